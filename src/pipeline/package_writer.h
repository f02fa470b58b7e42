// Writing one component of a diffuse package: each tensor encoded at the component's storage
// precision (layer matrices only; norms, biases and embeddings stay float32), then written as
// safetensors, in shards with a diffusers index when a chunk size is set.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "io/weight_store.h"

namespace diffuse {

/// How a package stores layer matrices.
struct StoragePrecision {
  enum Kind { F32, F16, BF16, Int8, Palette } kind = F16;
  int bits = 0;  // Palette: index bits, 1..8
  /// Palette: output channels per lookup table (Core ML's per_grouped_channel group size);
  /// 0 = one table per tensor.
  int64_t group_channels = 0;
  std::string name() const;
};

/// "f32", "f16", "bf16", "int8", "paletteN" (N = 1..8); ConfigError naming `what` otherwise.
StoragePrecision parse_storage_precision(const std::string& name, const std::string& what);

struct WrittenComponent {
  int64_t parameters = 0, disk_bytes = 0, memory_bytes = 0;
  /// ||loaded - source|| / ||source|| over the component's floating-point tensors.
  double relative_error = 0;
  nlohmann::json files = nlohmann::json::array();     // [{name, bytes, sha256}]
  nlohmann::json tensors = nlohmann::json::object();  // name -> {dtype, shape, file, encoding}
};

/// Writes `store`'s tensors into `dir` as `<stem>.safetensors` or, above `chunk_bytes` (> 0),
/// `<stem>-0000k-of-0000n.safetensors` + `<stem>.safetensors.index.json`. `progress(done, total)`
/// is called per tensor and returns false to stop (Cancelled).
WrittenComponent write_package_component(const WeightStore& store, const std::string& dir,
                                         const std::string& stem, StoragePrecision precision,
                                         int64_t chunk_bytes,
                                         const std::function<bool(int, int)>& progress);

}  // namespace diffuse
