#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "diffuse/error.hpp"

namespace diffuse {

MappedFile MappedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FileError(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw FileError(path + ": not a regular file");
  }
  MappedFile f;
  f.path_ = path;
  f.size_ = static_cast<size_t>(st.st_size);
  if (f.size_ == 0) {
    ::close(fd);
    f.data_ = Buffer(nullptr, [](std::byte*) {});
    return f;
  }
  void* p = mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw FileError(path + ": mmap failed: " + std::strerror(errno));
  const size_t size = f.size_;
  f.data_ = Buffer(static_cast<std::byte*>(p), [size](std::byte* q) { munmap(q, size); });
  return f;
}

void MappedFile::release_pages(const void* p, size_t bytes) const {
  const auto* begin = static_cast<const std::byte*>(p);
  if (begin < data() || begin + bytes > data() + size_)
    throw FileError(path_ + ": release_pages outside the mapping");
  release_mapped_pages(p, bytes);
}

void release_mapped_pages(const void* p, size_t bytes) noexcept {
  // Whole pages inside the range only; a read-only private mapping refaults them from the file.
  static const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(p);
  const uintptr_t lo = (begin + page - 1) & ~(page - 1);
  const uintptr_t hi = (begin + bytes) & ~(page - 1);
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw FileError(path + ": read error");
  return ss.str();
}

}  // namespace diffuse
