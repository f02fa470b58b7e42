// Read-only memory-mapped files. Tensors loaded from a file are views into the mapping; the mapping
// stays alive while any view does (the Buffer holds it).
#pragma once

#include <cstddef>
#include <string>

#include "core/allocator.h"

namespace diffuse {

class MappedFile {
 public:
  /// Maps `path` read-only; throws FileError naming the path when it cannot.
  static MappedFile open(const std::string& path);

  const std::byte* data() const { return data_.get(); }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  /// Owner handle to pass to Tensor::view_of.
  const Buffer& buffer() const { return data_; }
  /// Drops this process's resident pages of [p, p + bytes) (which must lie inside the mapping),
  /// e.g. once a tensor has been converted into memory of its own: they stop counting towards the
  /// process's memory and are read from the file again if touched. Contents are unchanged.
  void release_pages(const void* p, size_t bytes) const;

 private:
  Buffer data_;
  size_t size_ = 0;
  std::string path_;
};

/// Drops this process's resident pages lying wholly inside [p, p + bytes), which must be memory of
/// a read-only file mapping (a MappedFile or a tensor viewing one): they are read from the file
/// (the page cache, usually) again when touched. Never for other memory: anonymous pages would
/// lose their contents. Cannot fail (a failing madvise leaves the pages resident).
void release_mapped_pages(const void* p, size_t bytes) noexcept;

/// Reads a whole (small) file into a string; throws FileError naming the path.
std::string read_text_file(const std::string& path);

}  // namespace diffuse
