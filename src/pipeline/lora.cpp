#include "pipeline/lora.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "backend/ops.h"
#include "diffuse/error.hpp"
#include "io/safetensors.h"

namespace diffuse {

using ops::expr::in;

namespace {

bool starts_with(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}
std::string flat(std::string name) {
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

// kohya prefixes -> component (SD 1.x/2.x have one text encoder, SDXL two).
const std::pair<const char*, const char*> kKohyaPrefixes[] = {
    {"lora_unet_", "unet"},
    {"lora_te1_", "text_encoder"},
    {"lora_te2_", "text_encoder_2"},
    {"lora_te_", "text_encoder"},
};
const char* const kPeftComponents[] = {"unet", "text_encoder", "text_encoder_2"};
// Suffixes of the two halves and the alpha, per format.
struct Halves {
  const char *down, *up;
};
constexpr Halves kKohyaHalves{".lora_down.weight", ".lora_up.weight"};
constexpr Halves kPeftHalves{".lora_A.weight", ".lora_B.weight"};

/// The adapter kinds and namings people meet that this reader does not implement.
void refuse_unsupported(const std::string& path, const std::string& key) {
  for (const char* marker : {"hada_", "lokr_", ".dora_scale", ".lora_mid."})
    if (key.find(marker) != std::string::npos)
      throw FileError(path + ": '" + key +
                      "' belongs to a LyCORIS adapter (LoHa, LoKr, DoRA or CP-decomposed LoCon), "
                      "which diffuse does not support; only LoRA/LoCon files are");
  for (const char* ldm :
       {"lora_unet_input_blocks_", "lora_unet_middle_block_", "lora_unet_output_blocks_"})
    if (starts_with(key, ldm))
      throw FileError(path + ": '" + key +
                      "' uses the original LDM module names; diffuse reads kohya LoRAs in "
                      "diffusers module naming (lora_unet_down_blocks_...)");
}

/// A LoRA tensor's key taken apart: its component, module path, which part it is ("down", "up"
/// or "alpha") and the key without that part's suffix.
struct KeyParts {
  std::string component, module, part, stem;
};

/// False when `key` is not a LoRA tensor of a known format.
bool classify(const std::string& key, KeyParts& k) {
  const auto split = [&](const std::string& prefix, const Halves& h) {
    for (const auto& [part, suffix] :
         {std::pair<const char*, const char*>{"down", h.down}, {"up", h.up}, {"alpha", ".alpha"}})
      if (ends_with(key, suffix)) {
        k.part = part;
        k.stem = key.substr(0, key.size() - std::string(suffix).size());
        k.module = k.stem.substr(prefix.size());
        return true;
      }
    return false;
  };
  for (const auto& [prefix, comp] : kKohyaPrefixes)
    if (starts_with(key, prefix)) {
      k.component = comp;
      return split(prefix, kKohyaHalves);
    }
  for (const char* comp : kPeftComponents) {
    const std::string prefix = std::string(comp) + ".";
    if (starts_with(key, prefix)) {
      k.component = comp;
      return split(prefix, kPeftHalves);
    }
  }
  return false;
}

struct PartialModule {
  std::string key;
  Tensor down, up, alpha;
};

LoraModule finish_module(const std::string& path, const std::string& component,
                         const std::string& module, const PartialModule& p) {
  if (!p.down.defined() || !p.up.defined())
    throw FileError(path + ": '" + p.key + "' lacks its " + (p.down.defined() ? "up" : "down") +
                    " half");
  const Tensor down = p.down.to(DType::F32).contiguous(), up = p.up.to(DType::F32).contiguous();
  const int64_t rank = down.ndim() >= 2 ? down.dim(0) : 0;
  bool trailing_ones = true;
  for (size_t d = 2; d < size_t(up.ndim()); ++d) trailing_ones = trailing_ones && up.dim(d) == 1;
  if (rank < 1 || down.ndim() < 2 || up.ndim() < 2 || up.dim(1) != rank || !trailing_ones)
    throw FileError(path + ": '" + p.key + "' has halves of shapes " + down.shape().str() +
                    " and " + up.shape().str() + ", which do not form a rank-r update");
  LoraModule m;
  m.component = component;
  m.flat_name = flat(module);
  m.key = p.key;
  m.down = down;
  m.up = up;
  m.alpha = static_cast<float>(rank);  // no alpha: alpha = rank, a scale of 1
  if (p.alpha.defined()) {
    if (p.alpha.numel() != 1) throw FileError(path + ": '" + p.key + ".alpha' is not a scalar");
    m.alpha = p.alpha.to(DType::F32).to_vector()[0];
  }
  return m;
}

/// [r, in...] -> its transpose [in_elems, r], for linear(up, down^T) = up @ down.
Tensor transposed_rows(const Tensor& down) {
  const int64_t r = down.dim(0), n = down.numel() / r;
  const std::vector<float> d = down.to_vector();
  std::vector<float> t(d.size());
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < n; ++j) t[size_t(j * r + i)] = d[size_t(i * n + j)];
  return Tensor::from_floats(t.data(), {n, r});
}

}  // namespace

LoraFile read_lora_file(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw FileError(path + ": LoRA file not found");
  const SafetensorsFile f = SafetensorsFile::open(path);
  std::map<std::pair<std::string, std::string>, PartialModule> parts;
  for (const std::string& key : f.keys()) {
    refuse_unsupported(path, key);
    KeyParts k;
    if (!classify(key, k))
      throw FileError(path + ": '" + key +
                      "' is not a LoRA tensor (expected kohya lora_unet_/lora_te_ keys with "
                      ".lora_down/.lora_up/.alpha, or diffusers unet./text_encoder. keys with "
                      ".lora_A/.lora_B)");
    PartialModule& p = parts[{k.component, k.module}];
    p.key = k.stem;
    (k.part == "down" ? p.down : k.part == "up" ? p.up : p.alpha) = f.get(key);
  }
  if (parts.empty()) throw FileError(path + ": no LoRA tensors in the file");
  LoraFile file;
  file.path = path;
  for (const auto& [where, p] : parts)
    file.modules.push_back(finish_module(path, where.first, where.second, p));
  return file;
}

WeightStore apply_loras(const WeightStore& base, const std::string& component,
                        const std::vector<LoraApplication>& loras, std::vector<size_t>& matched) {
  matched.assign(loras.size(), 0);
  // The store's modules under the spelling both formats reduce to.
  std::map<std::string, std::string> modules;
  for (const std::string& key : base.keys())
    if (ends_with(key, ".weight")) {
      const std::string module = key.substr(0, key.size() - 7);
      modules.emplace(flat(module), module);
    }
  std::map<std::string, Tensor> merged;  // weight key -> W + sum of updates
  for (size_t i = 0; i < loras.size(); ++i)
    for (const LoraModule& m : loras[i].file->modules) {
      if (m.component != component) continue;
      auto it = modules.find(m.flat_name);
      // PEFT text-encoder files sometimes drop the leading "text_model.".
      if (it == modules.end()) it = modules.find("text_model_" + m.flat_name);
      if (it == modules.end()) continue;
      ++matched[i];
      const std::string weight_key = it->second + ".weight";
      auto [entry, fresh] = merged.try_emplace(weight_key);
      if (fresh) entry->second = base.get(weight_key);
      Tensor& w = entry->second;
      const int64_t rank = m.down.dim(0), out = m.up.dim(0);
      if (w.dim(0) != out || w.numel() != out * (m.down.numel() / rank))
        throw FileError(loras[i].file->path + ": '" + m.key + "' updates a " + std::to_string(out) +
                        " x " + std::to_string(m.down.numel() / rank) + " weight, but " +
                        weight_key + " is " + w.shape().str() + " (a LoRA for another model?)");
      const Tensor update = ops::linear(m.up.reshape({out, rank}), transposed_rows(m.down), nullptr)
                                .reshape(w.shape());
      const float k = loras[i].scale * m.alpha / static_cast<float>(rank);
      w = ops::evaluate(in(0) + k * in(1), {w, update});
    }
  WeightStore patched = base;
  for (auto& [key, w] : merged) patched.add(key, std::move(w));
  return patched;
}

}  // namespace diffuse
