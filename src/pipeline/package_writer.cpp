#include "pipeline/package_writer.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "core/allocator.h"
#include "core/palette.h"
#include "core/weight.h"
#include "diffuse/error.hpp"
#include "diffuse/utilities.hpp"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"

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
    const PalettizedTensor pt = palettize(stored, p.bits, p.group_channels);
    const int64_t entries = int64_t{1} << p.bits;
    // One table: [2^bits]; one per group of output channels: [groups, 2^bits].
    Tensor table = Tensor::empty(p.group_channels > 0 ? Shape{pt.groups, entries} : Shape{entries},
                                 DType::F16);
    std::copy(pt.palette.begin(), pt.palette.end(), table.data_as<uint16_t>());
    Tensor packed = Tensor::empty({static_cast<int64_t>(pt.packed.size())}, DType::U8);
    std::copy(pt.packed.begin(), pt.packed.end(), packed.data_as<uint8_t>());
    Tensor shape = Tensor::empty({stored.ndim()}, DType::I64);
    for (int i = 0; i < stored.ndim(); ++i) shape.data_as<int64_t>()[i] = stored.dim(i);
    e.tensors = {{key, packed}, {key + ":palette", table}, {key + ":shape", shape}};
    e.encoding = "palette " + std::to_string(p.bits) + "-bit";
    if (p.group_channels > 0)
      e.encoding += ", " + std::to_string(pt.groups) + " tables of " +
                    std::to_string(palette_group_rows(stored.dim(0), pt.groups)) + " channels";
    e.memory_bytes = stored.numel() * 2;  // expanded to float16 at load
    e.decoded = expand_palette(pt.palette.data(), entries, pt.groups, pt.packed.data(),
                               pt.packed.size(), p.bits, stored.shape());
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

/// A component's weight files, written as the tensors come: a new shard when the next tensor
/// would take the current one past `chunk_bytes` (> 0). Shards are written under provisional
/// names and renamed when their count is known (diffusers' names say "-0000k-of-0000n").
class ShardedOutput {
 public:
  ShardedOutput(std::string dir, std::string stem, int64_t chunk_bytes)
      : dir_(std::move(dir)), stem_(std::move(stem)), chunk_bytes_(chunk_bytes) {}

  /// Adds a weight and its companions to one shard; returns its index.
  size_t add(const NamedTensors& tensors) {
    if (!current_ || (chunk_bytes_ > 0 && !current_->empty() &&
                      int64_t(current_->data_bytes()) + bytes_of(tensors) > chunk_bytes_))
      start_shard();
    for (const auto& [name, t] : tensors) {
      current_->add(name, t);
      keys_.back().push_back(name);
    }
    return provisional_.size() - 1;
  }

  /// Finishes the last shard and gives every shard its final name: {name, keys} per shard.
  std::vector<std::pair<std::string, std::vector<std::string>>> finish() {
    if (!current_) start_shard();  // a component without tensors still gets its (empty) file
    current_->finish();
    std::vector<std::pair<std::string, std::vector<std::string>>> shards;
    for (size_t s = 0; s < provisional_.size(); ++s) {
      const std::string name = provisional_.size() == 1 ? stem_ + ".safetensors"
                                                        : shard_name(stem_, s, provisional_.size());
      fs::rename(provisional_[s], fs::path(dir_) / name);
      shards.push_back({name, std::move(keys_[s])});
    }
    return shards;
  }

 private:
  void start_shard() {
    if (current_) current_->finish();
    provisional_.push_back(
        (fs::path(dir_) / (stem_ + ".part" + std::to_string(provisional_.size()))).string());
    keys_.emplace_back();
    current_ = std::make_unique<SafetensorsWriter>(
        provisional_.back(),
        std::map<std::string, std::string>{{"format", "pt"}, {"generator", "diffuse convert"}});
  }

  std::string dir_, stem_;
  int64_t chunk_bytes_;
  std::unique_ptr<SafetensorsWriter> current_;
  std::vector<std::string> provisional_;
  std::vector<std::vector<std::string>> keys_;
};

}  // namespace

WrittenComponent write_package_component(const WeightStore& store, const std::string& dir,
                                         const std::string& stem, StoragePrecision precision,
                                         int64_t chunk_bytes,
                                         const std::function<bool(int, int)>& progress) {
  WrittenComponent out;
  // Every tensor here is of a size used once: a caching pool would keep a block of each size.
  const auto pool = MemoryPool::create(/*caching=*/false);
  const MemoryPoolScope pool_scope(*pool);
  ShardedOutput shards(dir, stem, chunk_bytes);
  double error2 = 0, norm2 = 0;
  const std::vector<std::string> keys = store.keys();
  for (size_t i = 0; i < keys.size(); ++i) {
    // Integer buffers (CLIP's position_ids) as they are; floats as F32, decoded from any form.
    // Each tensor is read, encoded and written on its own, and its file pages dropped after, so
    // converting holds about one tensor, not the model.
    const Tensor raw = store.raw(keys[i]);
    const bool integer = raw.dtype() == DType::I64 || raw.dtype() == DType::I32;
    const Tensor stored = integer ? raw : store.read_once(keys[i]);
    const Encoded e = encode(keys[i], stored, precision);
    out.parameters += stored.numel();
    if (!integer) accumulate_error(stored, e.decoded.defined() ? e.decoded : stored, error2, norm2);
    out.memory_bytes += e.memory_bytes;
    const size_t shard = shards.add(e.tensors);
    store.release_pages(keys[i]);
    out.tensors[keys[i]] = {
        {"dtype", dtype_name(stored.dtype())},
        {"shape", std::vector<int64_t>(stored.shape().begin(), stored.shape().end())},
        {"encoding", e.encoding},
        {"shard", shard}};
    if (progress && !progress(static_cast<int>(i + 1), static_cast<int>(keys.size())))
      throw Cancelled();
  }
  out.relative_error = norm2 > 0 ? std::sqrt(error2 / norm2) : 0.0;
  nlohmann::json weight_map = nlohmann::json::object();
  for (const auto& [name, shard_keys] : shards.finish()) {
    const std::string path = (fs::path(dir) / name).string();
    const int64_t bytes = static_cast<int64_t>(fs::file_size(path));
    out.disk_bytes += bytes;
    out.files.push_back({{"name", name}, {"bytes", bytes}, {"sha256", sha256_file(path)}});
    for (const auto& key : shard_keys) weight_map[key] = name;
  }
  for (auto& [key, info] : out.tensors.items())
    info["file"] = out.files[info["shard"].get<size_t>()]["name"];
  if (out.files.size() > 1) {
    const std::string index = stem + ".safetensors.index.json";
    std::ofstream((fs::path(dir) / index).string()) << nlohmann::json{
        {"metadata", {{"total_size", out.disk_bytes}}},
        {"weight_map", weight_map}}.dump(1);
  }
  return out;
}

}  // namespace diffuse
