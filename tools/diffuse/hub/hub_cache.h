// The Hugging Face cache, laid out as huggingface_hub lays it out, so either tool reuses the
// other's downloads. Under <cache>/models--org--name:
//   blobs/<etag>                  file contents, named by the Hub's ETag
//   blobs/<etag>.incomplete       a download in progress (resumable)
//   snapshots/<commit>/<file>     relative symlink to ../../blobs/<etag> (one more ../ per folder)
//   refs/<revision>               the commit hash the revision resolved to
// and <cache>/.locks/models--org--name/<etag>.lock is flock()ed while a blob is downloaded.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "hub/hub_options.h"

namespace diffuse::hub {

namespace fs = std::filesystem;

/// "org/name" with each part of letters, digits, '-', '_', '.' (not "." or ".."); HubError if not.
void check_repo_id(const std::string& repo_id);
/// Whether `s` has the shape of a repo id (does not throw).
bool looks_like_repo_id(const std::string& s);
/// A file name from the Hub is a relative path without "..", "." or empty parts; HubError if not.
void check_relative_filename(const std::string& name);
/// 40 (or 64) lower-case hex digits.
bool is_commit_hash(const std::string& s);
/// "W/\"abc\"" -> "abc" (as huggingface_hub); HubError when the result is no safe file name.
std::string normalize_etag(const std::string& etag);

class RepoCache {
 public:
  RepoCache(const std::string& cache_dir, const std::string& repo_id);
  const fs::path& root() const { return root_; }
  fs::path blob(const std::string& etag) const { return root_ / "blobs" / etag; }
  fs::path incomplete(const std::string& etag) const { return blob(etag).string() + ".incomplete"; }
  fs::path snapshot_dir(const std::string& commit) const { return root_ / "snapshots" / commit; }
  fs::path snapshot_file(const std::string& commit, const std::string& name) const {
    return snapshot_dir(commit) / name;
  }
  fs::path lock_file(const std::string& etag) const;

  /// refs/<revision>, when present and holding a commit hash.
  std::optional<std::string> read_ref(const std::string& revision) const;
  /// Writes refs/<revision> (atomically); nothing for a revision that is itself the commit.
  void write_ref(const std::string& revision, const std::string& commit) const;
  /// The commit `revision` names in the cache: itself when a commit hash, else refs/<revision>.
  std::optional<std::string> cached_commit(const std::string& revision) const;
  /// snapshots/<commit>/<name> -> blobs/<etag>, a relative symlink replaced atomically.
  void link_snapshot(const std::string& commit, const std::string& name,
                     const std::string& etag) const;
  /// Files (relative names, '/'-separated) present in snapshots/<commit>, sorted.
  std::vector<std::string> snapshot_files(const std::string& commit) const;

 private:
  fs::path cache_dir_, root_;
  std::string folder_;
};

/// An exclusive flock() on a lock file (created with its folder), held for the object's lifetime.
class FileLock {
 public:
  explicit FileLock(const fs::path& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

/// A repository and revision as users write them: "org/name" (revision "main") or
/// "org/name@revision" (a branch, tag or commit); nullopt for anything else.
struct RepoReference {
  std::string repo_id, revision;
  /// The repository's name without its owner: what a model pulled from it is called (as the
  /// folder of a clone would be).
  std::string name() const { return repo_id.substr(repo_id.find('/') + 1); }
};
std::optional<RepoReference> parse_repo_reference(const std::string& s);

/// `model` as `generate --model` means it: nullopt when it is an existing path or not shaped like
/// "org/name[@revision]" (the caller uses it as given); the cached snapshot folder of its revision
/// ("main" by default) when pulled; otherwise HubError saying to run `diffuse pull`.
std::optional<std::string> resolve_cached_model(const std::string& model,
                                                const HubOptions& options);

/// Writes `text` to `path` through a temporary file in the same folder and a rename.
void write_file_atomically(const fs::path& path, const std::string& text);

}  // namespace diffuse::hub
