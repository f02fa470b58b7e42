#include "hub/hub_select.h"

#include <fnmatch.h>

#include <algorithm>
#include <regex>

namespace diffuse::hub {

namespace {

const std::vector<std::string> kConfigNames = {"config.json",
                                               "scheduler_config.json",
                                               "vocab.json",
                                               "merges.txt",
                                               "tokenizer_config.json",
                                               "special_tokens_map.json",
                                               "preprocessor_config.json"};
const std::string kPrefix = "(diffusion_pytorch_model|model|pytorch_model)";
const std::string kShard = "-[0-9]{5}-of-[0-9]{5}";

/// The weight files of one format ("safetensors" or "bin") and variant ("" for the plain ones):
/// single files when there are any, else a sharded set (its index and shards).
std::vector<std::string> weight_set(const std::vector<std::string>& names, const std::string& fmt,
                                    const std::string& variant) {
  std::regex single, shard, index;
  if (variant.empty()) {
    single = std::regex(kPrefix + "\\." + fmt);
    shard = std::regex(kPrefix + kShard + "\\." + fmt);
    index = std::regex(kPrefix + "\\." + fmt + "\\.index\\.json");
  } else {
    const std::string v = "\\." + variant;
    single = std::regex(kPrefix + v + "\\." + fmt);
    shard = std::regex(kPrefix + "(" + v + kShard + "|" + kShard + v + ")\\." + fmt);
    index = std::regex(kPrefix + "(\\." + fmt + "\\.index" + v + "|" + v + "\\." + fmt +
                       "\\.index)\\.json");
  }
  std::vector<std::string> singles, sharded;
  bool has_index = false;
  for (const auto& n : names) {
    if (std::regex_match(n, single)) singles.push_back(n);
    if (std::regex_match(n, index)) {
      sharded.push_back(n);
      has_index = true;
    }
    if (std::regex_match(n, shard)) sharded.push_back(n);
  }
  if (!singles.empty()) return singles;
  return has_index ? sharded : std::vector<std::string>{};
}

/// The variants present among the weight files of `fmt` (e.g. {"fp16", "non_ema"}).
std::vector<std::string> variants_present(const std::vector<std::string>& names,
                                          const std::string& fmt) {
  const std::regex re(kPrefix + "\\.([A-Za-z0-9_]+)(" + kShard + ")?\\." + fmt);
  std::vector<std::string> out;
  std::smatch m;
  for (const auto& n : names)
    if (std::regex_match(n, m, re) && m[2] != fmt && m[2] != "index") out.push_back(m[2]);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

/// Whether a file name is a weight file of any format (the ones not taken included).
bool looks_like_weights(const std::string& name) {
  for (const char* ext :
       {".safetensors", ".bin", ".ckpt", ".onnx", ".msgpack", ".h5", ".pt", ".pth"}) {
    const std::string e = ext;
    if (name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0)
      return true;
  }
  return false;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

/// One weight set for a component folder's files (names without the folder); `how` says which.
std::vector<std::string> choose_weights(const std::vector<std::string>& names,
                                        const std::string& variant, std::string& how) {
  for (const std::string fmt : {"safetensors", "bin"}) {
    if (!variant.empty()) {
      auto v = weight_set(names, fmt, variant);
      if (!v.empty()) return v;
    }
    auto plain = weight_set(names, fmt, "");
    if (!plain.empty()) {
      if (!variant.empty()) how = " (no " + variant + " variant: the plain weights)";
      return plain;
    }
    // No plain weights of this format: a variant is all there is (as an fp16-only component).
    const auto others = variants_present(names, fmt);
    if (!others.empty()) {
      how = " (only the " + others.front() + " variant exists)";
      return weight_set(names, fmt, others.front());
    }
  }
  return {};
}

}  // namespace

bool valid_variant(const std::string& variant) {
  return !variant.empty() && std::all_of(variant.begin(), variant.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

Selection select_pipeline_files(const nlohmann::json& model_index,
                                const std::vector<std::string>& repo_files,
                                const std::string& variant) {
  Selection s;
  s.files.push_back("model_index.json");
  if (!model_index.is_object()) return s;
  for (const auto& [component, value] : model_index.items()) {
    if (component.empty() || component.front() == '_' || !value.is_array() || value.size() != 2 ||
        !value[0].is_string() || !value[1].is_string())
      continue;  // not a component, or one the pipeline does not have ([null, null])
    if (component == "safety_checker") {
      s.choices.push_back("safety_checker: skipped (diffuse does not run the safety checker)");
      continue;
    }
    std::vector<std::string> names;  // the files directly inside the component's folder
    const std::string prefix = component + "/";
    for (const auto& f : repo_files)
      if (f.rfind(prefix, 0) == 0 && f.find('/', prefix.size()) == std::string::npos)
        names.push_back(f.substr(prefix.size()));
    if (names.empty()) {
      s.choices.push_back(component + ": no such folder in the repository");
      continue;
    }
    std::vector<std::string> configs;
    for (const auto& n : names)
      if (std::find(kConfigNames.begin(), kConfigNames.end(), n) != kConfigNames.end())
        configs.push_back(n);
    std::string how;
    const std::vector<std::string> weights = choose_weights(names, variant, how);
    for (const auto& n : configs) s.files.push_back(prefix + n);
    for (const auto& n : weights) s.files.push_back(prefix + n);
    std::string what = weights.empty() ? "" : join(weights) + how;
    if (weights.empty() && std::any_of(names.begin(), names.end(), looks_like_weights))
      what = "no safetensors or .bin weights";
    if (!configs.empty()) what += (what.empty() ? "" : " + ") + join(configs);
    s.choices.push_back(component + ": " + (what.empty() ? "nothing to download" : what));
  }
  return s;
}

std::vector<std::string> select_matching(const std::vector<std::string>& repo_files,
                                         const std::vector<std::string>& patterns) {
  std::vector<std::string> out;
  for (const auto& f : repo_files) {
    for (std::string p : patterns) {
      if (!p.empty() && p.back() == '/') p += "*";
      if (::fnmatch(p.c_str(), f.c_str(), 0) == 0) {
        out.push_back(f);
        break;
      }
    }
  }
  return out;
}

}  // namespace diffuse::hub
