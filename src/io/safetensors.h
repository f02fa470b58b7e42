// safetensors: reader (memory-mapped, zero-copy, fully validated) and writer.
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}},
// optional "__metadata__" (string -> string), then the data section.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace diffuse {

struct TensorInfo {
  DType dtype;
  Shape shape;
  size_t begin = 0, end = 0;  // byte offsets within the data section
};

class SafetensorsFile {
 public:
  /// Maps and validates `path`; throws FileError("<path>: <problem>") on any inconsistency.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  std::vector<std::string> keys() const;  // sorted
  bool contains(const std::string& name) const { return infos_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  /// Zero-copy view in the stored dtype (copied only if the stored bytes are misaligned).
  Tensor get(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// Drops the process's resident pages of tensor `name`'s bytes (MappedFile::release_pages),
  /// once it has been converted into memory of its own.
  void release(const std::string& name) const;
  /// Drops every resident page of the file (between uses of a whole model component).
  void release_all() const { file_.release_pages(file_.data(), file_.size()); }

 private:
  MappedFile file_;
  const std::byte* data_ = nullptr;
  std::map<std::string, TensorInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

/// Writes tensors (any dtype, made contiguous) in the order given, with optional metadata.
/// Writes through an AtomicFile (a unique temporary name in the same folder, fsynced, then
/// renamed), so a failure never leaves a half-written or temporary file.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace diffuse
