#include "pipeline/package_writer.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/palette.h"
#include "core/weight.h"
#include "diffuse/error.hpp"
#include "diffuse/utilities.hpp"
#include "io/safetensors.h"

namespace fs = std::filesystem;

namespace diffuse {

std::string StoragePrecision::name() const {
  switch (kind) {
    case F32:
      return "f32";
    case F16:
      return "f16";
    case BF16:
      return "bf16";
    case Int8:
      return "int8";
    case Palette:
      return "palette" + std::to_string(bits);
  }
  return "?";
}

StoragePrecision parse_storage_precision(const std::string& name, const std::string& what) {
  if (name == "f32") return {StoragePrecision::F32, 0};
  if (name == "f16") return {StoragePrecision::F16, 0};
  if (name == "bf16") return {StoragePrecision::BF16, 0};
  if (name == "int8") return {StoragePrecision::Int8, 0};
  if (name.size() == 8 && name.rfind("palette", 0) == 0 && name[7] >= '1' && name[7] <= '8')
    return {StoragePrecision::Palette, name[7] - '0'};
  throw ConfigError(what + ": unknown precision '" + name +
                    "' (choose f32, f16, bf16, int8 or palette1..palette8)");
}

namespace {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

/// Linear and Conv2d weights: what LoadOptions::precision and the compressed encodings apply to.
/// CLIP's token and position embeddings are 2-D but are looked up, not multiplied.
bool is_layer_matrix(const std::string& key, const Tensor& t) {
  auto ends_with = [&](const std::string& s) {
    return key.size() >= s.size() && key.compare(key.size() - s.size(), s.size(), s) == 0;
  };
  return (t.ndim() == 2 || t.ndim() == 4) && ends_with(".weight") &&
         !ends_with("token_embedding.weight") && !ends_with("position_embedding.weight");
}

struct Encoded {
  NamedTensors tensors;  // the weight and its companions ("<key>:scales", ...)
  std::string encoding;
  int64_t memory_bytes = 0;
  Tensor decoded;  // what a load computes with, as F32 (undefined: the stored values exactly)
};

/// Adds sum((decoded - original)^2) and sum(original^2) over a tensor.
void accumulate_error(const Tensor& original, const Tensor& decoded, double& error2,
                      double& norm2) {
  const Tensor a = original.to(DType::F32).contiguous(), b = decoded.to(DType::F32).contiguous();
  const float *x = a.f32(), *y = b.f32();
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = double(y[i]) - double(x[i]);
    error2 += d * d;
    norm2 += double(x[i]) * double(x[i]);
  }
}

Encoded encode(const std::string& key, const Tensor& stored, StoragePrecision p) {
  Encoded e;
  const bool integer = stored.dtype() == DType::I64 || stored.dtype() == DType::I32;
  if (integer || !is_layer_matrix(key, stored) || p.kind == StoragePrecision::F32) {
    const Tensor t = integer ? stored : stored.to(DType::F32);
    e.tensors = {{key, t}};
    e.encoding = std::string(dtype_name(t.dtype()));
  } else if (p.kind == StoragePrecision::F16 || p.kind == StoragePrecision::BF16) {
    const Tensor t = stored.to(p.kind == StoragePrecision::F16 ? DType::F16 : DType::BF16);
    e.tensors = {{key, t}};
    e.encoding = std::string(dtype_name(t.dtype()));
    e.decoded = t;
  } else if (p.kind == StoragePrecision::Int8) {
    const Weight w = Weight::from_tensor(stored, WeightPrecision::Int8);
    e.tensors = {{key, w.values}, {key + ":scales", w.scales}};
    e.encoding = "int8 per-output-channel";
    e.decoded = w.to_f32();
  } else {
    const PalettizedTensor pt = palettize(stored, p.bits);
    std::vector<uint16_t> palette = pt.palette;
    palette.resize(size_t{1} << p.bits, palette.back());  // always 2^bits entries
    Tensor table = Tensor::empty({static_cast<int64_t>(palette.size())}, DType::F16);
    std::copy(palette.begin(), palette.end(), table.data_as<uint16_t>());
    Tensor packed = Tensor::empty({static_cast<int64_t>(pt.packed.size())}, DType::U8);
    std::copy(pt.packed.begin(), pt.packed.end(), packed.data_as<uint8_t>());
    Tensor shape = Tensor::empty({stored.ndim()}, DType::I64);
    for (int i = 0; i < stored.ndim(); ++i) shape.data_as<int64_t>()[i] = stored.dim(i);
    e.tensors = {{key, packed}, {key + ":palette", table}, {key + ":shape", shape}};
    e.encoding = "palette " + std::to_string(p.bits) + "-bit";
    e.memory_bytes = stored.numel() * 2;  // expanded to float16 at load
    e.decoded = expand_palette(pt.palette.data(), static_cast<int64_t>(pt.palette.size()),
                               pt.packed.data(), pt.packed.size(), p.bits, stored.shape());
    return e;
  }
  for (const auto& [name, t] : e.tensors) e.memory_bytes += static_cast<int64_t>(t.nbytes());
  return e;
}

int64_t bytes_of(const NamedTensors& tensors) {
  int64_t n = 0;
  for (const auto& [name, t] : tensors) n += static_cast<int64_t>(t.nbytes());
  return n;
}

std::string shard_name(const std::string& stem, size_t index, size_t count) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "-%05zu-of-%05zu.safetensors", index + 1, count);
  return stem + buf;
}

}  // namespace

WrittenComponent write_package_component(const WeightStore& store, const std::string& dir,
                                         const std::string& stem, StoragePrecision precision,
                                         int64_t chunk_bytes,
                                         const std::function<bool(int, int)>& progress) {
  WrittenComponent out;
  std::vector<NamedTensors> shards(1);
  double error2 = 0, norm2 = 0;
  const std::vector<std::string> keys = store.keys();
  for (size_t i = 0; i < keys.size(); ++i) {
    // Integer buffers (CLIP's position_ids) as they are; floats as F32, decoded from any form.
    const Tensor raw = store.raw(keys[i]);
    const bool integer = raw.dtype() == DType::I64 || raw.dtype() == DType::I32;
    const Tensor stored = integer ? raw : store.get(keys[i]);
    Encoded e = encode(keys[i], stored, precision);
    out.parameters += stored.numel();
    if (!integer) {
      if (e.decoded.defined())
        accumulate_error(stored, e.decoded, error2, norm2);
      else
        accumulate_error(stored, stored, error2, norm2);
    }
    out.memory_bytes += e.memory_bytes;
    if (chunk_bytes > 0 && !shards.back().empty() &&
        bytes_of(shards.back()) + bytes_of(e.tensors) > chunk_bytes)
      shards.emplace_back();
    out.tensors[keys[i]] = {
        {"dtype", dtype_name(stored.dtype())},
        {"shape", std::vector<int64_t>(stored.shape().begin(), stored.shape().end())},
        {"encoding", e.encoding},
        {"shard", shards.size() - 1}};
    for (auto& named : e.tensors) shards.back().push_back(std::move(named));
    if (progress && !progress(static_cast<int>(i + 1), static_cast<int>(keys.size())))
      throw Cancelled();
  }
  out.relative_error = norm2 > 0 ? std::sqrt(error2 / norm2) : 0.0;
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string name =
        shards.size() == 1 ? stem + ".safetensors" : shard_name(stem, s, shards.size());
    const std::string path = (fs::path(dir) / name).string();
    write_safetensors(path, shards[s], {{"format", "pt"}, {"generator", "diffuse convert"}});
    const int64_t bytes = static_cast<int64_t>(fs::file_size(path));
    out.disk_bytes += bytes;
    out.files.push_back({{"name", name}, {"bytes", bytes}, {"sha256", sha256_file(path)}});
    for (const auto& [key, t] : shards[s]) weight_map[key] = name;
  }
  for (auto& [key, info] : out.tensors.items())
    info["file"] = out.files[info["shard"].get<size_t>()]["name"];
  if (shards.size() > 1) {
    const std::string index = stem + ".safetensors.index.json";
    std::ofstream((fs::path(dir) / index).string()) << nlohmann::json{
        {"metadata", {{"total_size", out.disk_bytes}}},
        {"weight_map", weight_map}}.dump(1);
  }
  return out;
}

}  // namespace diffuse
