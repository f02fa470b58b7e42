// Read-only ZIP archives (the container of PyTorch's torch.save format), parsed from the central
// directory of a memory-mapped file. Stored entries are zero-copy views into the mapping; deflated
// entries are inflated into a new buffer. ZIP64 is understood; encryption and multi-disk archives
// are refused. Every inconsistency is a FileError naming the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/mapped_file.h"

namespace diffuse {

class ZipArchive {
 public:
  struct Entry {
    std::string name;
    uint16_t method = 0;  // 0 stored, 8 deflate
    uint64_t compressed_size = 0;
    uint64_t size = 0;
    uint64_t data_offset = 0;  // of the entry's bytes within the file (past its local header)
  };
  /// An entry's bytes and the buffer that keeps them alive.
  struct Bytes {
    Buffer owner;
    const std::byte* data = nullptr;
    size_t size = 0;
  };

  /// Maps `path` and reads its central directory; throws FileError naming the path.
  static ZipArchive open(const std::string& path);
  /// True when `path`'s first bytes are a ZIP local file header ("PK\3\4").
  static bool looks_like_zip(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::vector<Entry>& entries() const { return entries_; }
  /// The entry named `name`, or null.
  const Entry* find(const std::string& name) const;
  /// The entry's uncompressed bytes (a view into the mapping when stored).
  Bytes read(const Entry& e) const;

 private:
  MappedFile file_;
  std::vector<Entry> entries_;
  std::map<std::string, size_t> index_;
};

}  // namespace diffuse
