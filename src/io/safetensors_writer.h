// Writing a safetensors file one tensor at a time, for files larger than the memory one would
// spend on them (diffuse convert of a 2-4 GB UNet).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/tensor.h"

namespace diffuse {

/// The safetensors header entry of a tensor of `t`'s dtype and shape at data offset `offset`:
/// adds it to `header` and returns the offset after it. Shared by both writers.
size_t add_safetensors_entry(nlohmann::json& header, const std::string& name, const Tensor& t,
                             size_t offset);

/// The file's first bytes: the header's length (u64, little-endian) and the header, padded with
/// spaces so that the data section starts 8-byte aligned.
std::string safetensors_prefix(const nlohmann::json& header);

/// Streams tensors into `path`: each add() appends the tensor's bytes to a temporary sibling file
/// and keeps only its header entry; finish() writes the header and then copies the data behind it
/// into `path` through an AtomicFile. Memory stays one tensor whatever the file's size; the data
/// are written twice (the header, which comes first, is known only at the end). Without
/// finish() (an exception, a cancel) nothing is left behind.
class SafetensorsWriter {
 public:
  explicit SafetensorsWriter(std::string path, std::map<std::string, std::string> metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  /// Appends `t` (any dtype; made contiguous) as `name`; FileError on a duplicate name or a
  /// write error (naming `path`).
  void add(const std::string& name, const Tensor& t);
  /// Bytes of tensor data added so far.
  size_t data_bytes() const { return offset_; }
  bool empty() const { return count_ == 0; }
  /// Writes `path` and removes the temporary data file; FileError on failure.
  void finish();

 private:
  std::string path_, data_path_;
  int data_fd_ = -1;
  nlohmann::json header_ = nlohmann::json::object();
  size_t offset_ = 0, count_ = 0;
  bool finished_ = false;
};

}  // namespace diffuse
