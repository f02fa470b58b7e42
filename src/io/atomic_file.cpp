#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "diffuse/error.hpp"

namespace fs = std::filesystem;

namespace diffuse {

std::string create_unique_sibling(const std::string& path, int mkdir_mode, int* fd) {
  fs::path p(path);
  if (!p.has_filename()) p = p.parent_path();  // "out/" names the folder "out"
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  std::string base = ".";
  base += p.filename().string();
  base += '.';
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(getpid()));
  std::uniform_int_distribution<size_t> pick(0, sizeof kChars - 2);
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string name = base;
    for (int i = 0; i < 6; ++i) name += kChars[pick(rng)];
    const std::string candidate = (dir / name).string();
    if (mkdir_mode >= 0) {
      if (::mkdir(candidate.c_str(), static_cast<mode_t>(mkdir_mode)) == 0) return candidate;
    } else {
      const int f = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (f >= 0) {
        *fd = f;
        return candidate;
      }
    }
    if (errno != EEXIST) throw FileError(path + ": cannot write: " + std::strerror(errno));
  }
  throw FileError(path + ": cannot create a unique temporary name next to it");
}

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  int fd = -1;
  temp_ = create_unique_sibling(path, -1, &fd);
  file_ = ::fdopen(fd, "wb");
  if (!file_) {
    const int err = errno;
    ::close(fd);
    ::unlink(temp_.c_str());
    throw FileError(path + ": cannot write: " + std::strerror(err));
  }
}

AtomicFile::~AtomicFile() {
  if (done_) return;
  if (file_) std::fclose(file_);
  ::unlink(temp_.c_str());
}

void AtomicFile::commit(bool ok, const std::string& what) {
  std::string why = what;
  // Each step runs only while the previous ones succeeded; errno is read right after the failure.
  auto step = [&](auto&& action) {
    if (ok && !action()) {
      ok = false;
      why = std::strerror(errno);
    }
  };
  step([&] { return std::fflush(file_) == 0; });
  step([&] { return ::fsync(::fileno(file_)) == 0; });
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  step([&] { return closed; });
  step([&] { return std::rename(temp_.c_str(), path_.c_str()) == 0; });
  done_ = true;
  if (!ok) {
    ::unlink(temp_.c_str());
    throw FileError(path_ + ": write failed" + (why.empty() ? "" : ": " + why));
  }
}

}  // namespace diffuse
