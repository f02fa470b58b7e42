// Output files that appear complete or not at all. An AtomicFile is written under a unique hidden
// name in the destination's folder (".<name>.XXXXXX", created exclusively, so concurrent writers
// and a user's own "<name>.tmp" are never touched), flushed to disk, then renamed onto the
// destination. A failure, or destruction without commit(), removes the temporary file.
#pragma once

#include <cstdio>
#include <string>

namespace diffuse {

class AtomicFile {
 public:
  /// Creates the temporary file next to `path` (mode 0666 minus the umask, as a plain create).
  /// Throws FileError naming `path` when the folder is not writable.
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// The open temporary file, for writing.
  FILE* get() const { return file_; }
  const std::string& temp_path() const { return temp_; }

  /// Flushes, fsyncs and closes the temporary file and renames it onto the destination. Throws
  /// FileError naming the destination (after removing the temporary file) on any failure; `ok =
  /// false` reports a failure the caller saw while writing (`what` becomes part of the message).
  void commit(bool ok = true, const std::string& what = {});

 private:
  std::string path_, temp_;
  FILE* file_ = nullptr;
  bool done_ = false;
};

/// A unique, exclusively created sibling of `path`: `.<filename>.XXXXXX` in the same folder.
/// mkdir_mode >= 0 creates a folder with that mode (minus the umask), else a file opened for
/// writing whose descriptor is returned through `fd`. Returns the new path; throws FileError.
std::string create_unique_sibling(const std::string& path, int mkdir_mode, int* fd);

}  // namespace diffuse
