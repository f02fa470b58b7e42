#include "io/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "diffuse/error.hpp"
#include "io/atomic_file.h"

namespace diffuse {

namespace {

constexpr size_t kCopyBlock = size_t{4} << 20;

bool write_all(int fd, const void* data, size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

size_t add_safetensors_entry(nlohmann::json& header, const std::string& name, const Tensor& t,
                             size_t offset) {
  nlohmann::json shape = nlohmann::json::array();
  for (int64_t d : t.shape()) shape.push_back(d);
  header[name] = {{"dtype", std::string(dtype_name(t.dtype()))},
                  {"shape", shape},
                  {"data_offsets", {offset, offset + t.nbytes()}}};
  return offset + t.nbytes();
}

std::string safetensors_prefix(const nlohmann::json& header) {
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');  // keep the data section 8-byte aligned
  const uint64_t n = h.size();
  std::string prefix(8, '\0');
  std::memcpy(prefix.data(), &n, 8);  // little-endian on every platform we target
  return prefix + h;
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::map<std::string, std::string> metadata)
    : path_(std::move(path)) {
  data_path_ = create_unique_sibling(path_, -1, &data_fd_);
  if (!metadata.empty()) header_["__metadata__"] = metadata;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (data_fd_ >= 0) ::close(data_fd_);
  if (!data_path_.empty()) ::unlink(data_path_.c_str());
}

void SafetensorsWriter::add(const std::string& name, const Tensor& t) {
  if (finished_)
    throw FileError(path_ + ": tensor '" + name + "' added after the file was written");
  if (header_.contains(name) || name == "__metadata__")
    throw FileError(path_ + ": tensor '" + name + "' written twice");
  const Tensor dense = t.contiguous();
  if (dense.nbytes() > 0 && !write_all(data_fd_, dense.raw(), dense.nbytes()))
    throw FileError(path_ + ": cannot write: " + std::strerror(errno));
  offset_ = add_safetensors_entry(header_, name, dense, offset_);
  ++count_;
}

void SafetensorsWriter::finish() {
  if (finished_) return;
  finished_ = true;
  const int data_fd = data_fd_;
  data_fd_ = -1;
  if (::close(data_fd) != 0) throw FileError(path_ + ": cannot write: " + std::strerror(errno));
  const std::string prefix = safetensors_prefix(header_);
  AtomicFile file(path_);
  FILE* out = file.get();
  bool ok = std::fwrite(prefix.data(), 1, prefix.size(), out) == prefix.size();
  const int in = ::open(data_path_.c_str(), O_RDONLY | O_CLOEXEC);
  ok = ok && in >= 0;
  std::vector<char> block(kCopyBlock);
  size_t copied = 0;
  while (ok && copied < offset_) {
    const ssize_t r = ::read(in, block.data(), block.size());
    if (r < 0 && errno == EINTR) continue;
    ok = r > 0 && std::fwrite(block.data(), 1, static_cast<size_t>(r), out) == size_t(r);
    copied += r > 0 ? static_cast<size_t>(r) : 0;
  }
  const std::string why = ok ? "" : std::strerror(errno);
  if (in >= 0) ::close(in);
  ::unlink(data_path_.c_str());
  data_path_.clear();
  file.commit(ok, why);
}

}  // namespace diffuse
