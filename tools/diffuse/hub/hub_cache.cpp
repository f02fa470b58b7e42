#include "hub/hub_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <system_error>

namespace diffuse::hub {

namespace {

bool safe_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}
bool safe_part(const std::string& part) {
  return !part.empty() && part != "." && part != ".." &&
         std::all_of(part.begin(), part.end(), safe_name_char);
}
std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* digits = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string s;
  for (int i = 0; i < 8; ++i) s += digits[rng() % 36];
  return s;
}

}  // namespace

bool looks_like_repo_id(const std::string& s) {
  const size_t slash = s.find('/');
  if (slash == std::string::npos || s.find('/', slash + 1) != std::string::npos) return false;
  return safe_part(s.substr(0, slash)) && safe_part(s.substr(slash + 1));
}

void check_repo_id(const std::string& repo_id) {
  if (!looks_like_repo_id(repo_id))
    throw HubError("'" + repo_id +
                   "' is not a Hugging Face repository id (expected org/name, e.g. "
                   "stable-diffusion-v1-5/stable-diffusion-v1-5)");
}

void check_relative_filename(const std::string& name) {
  bool ok = !name.empty() && name.front() != '/' && name.find('\\') == std::string::npos &&
            name.find('\0') == std::string::npos;
  std::stringstream parts(name);
  std::string part;
  while (ok && std::getline(parts, part, '/')) ok = !part.empty() && part != "." && part != "..";
  if (!ok || name.back() == '/')
    throw HubError("refusing the file name '" + name +
                   "' from the Hub: not a plain relative path inside the repository");
}

bool is_commit_hash(const std::string& s) {
  return (s.size() == 40 || s.size() == 64) && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string normalize_etag(const std::string& etag) {
  std::string e = etag;
  if (e.rfind("W/", 0) == 0) e = e.substr(2);
  while (!e.empty() && e.front() == '"') e.erase(e.begin());
  while (!e.empty() && e.back() == '"') e.pop_back();
  if (!safe_part(e) || e.find("..") != std::string::npos)
    throw HubError("the Hub sent an ETag that is no safe file name: '" + etag + "'");
  return e;
}

RepoCache::RepoCache(const std::string& cache_dir, const std::string& repo_id)
    : cache_dir_(cache_dir) {
  check_repo_id(repo_id);
  if (cache_dir.empty()) throw HubError("no Hugging Face cache folder given");
  folder_ = "models--" + repo_id.substr(0, repo_id.find('/')) + "--" +
            repo_id.substr(repo_id.find('/') + 1);
  root_ = cache_dir_ / folder_;
}

fs::path RepoCache::lock_file(const std::string& etag) const {
  return cache_dir_ / ".locks" / folder_ / (etag + ".lock");
}

std::optional<std::string> RepoCache::read_ref(const std::string& revision) const {
  check_relative_filename(revision);
  std::ifstream in(root_ / "refs" / revision);
  std::string commit;
  if (!in || !std::getline(in, commit)) return std::nullopt;
  while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back())))
    commit.pop_back();
  if (!is_commit_hash(commit)) return std::nullopt;
  return commit;
}

void RepoCache::write_ref(const std::string& revision, const std::string& commit) const {
  if (revision == commit) return;
  check_relative_filename(revision);
  const fs::path path = root_ / "refs" / revision;
  fs::create_directories(path.parent_path());
  write_file_atomically(path, commit);
}

std::optional<std::string> RepoCache::cached_commit(const std::string& revision) const {
  if (is_commit_hash(revision)) return revision;
  return read_ref(revision);
}

void RepoCache::link_snapshot(const std::string& commit, const std::string& name,
                              const std::string& etag) const {
  check_relative_filename(name);
  const fs::path link = snapshot_file(commit, name);
  fs::create_directories(link.parent_path());
  const fs::path target = fs::relative(blob(etag), link.parent_path());
  const fs::path tmp =
      link.parent_path() / ("." + link.filename().string() + "." + random_suffix());
  fs::create_symlink(target, tmp);
  std::error_code ec;
  fs::rename(tmp, link, ec);
  if (ec) {
    fs::remove(tmp);
    throw HubError("cannot link " + link.string() + ": " + ec.message());
  }
}

std::vector<std::string> RepoCache::snapshot_files(const std::string& commit) const {
  std::vector<std::string> files;
  const fs::path dir = snapshot_dir(commit);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return files;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (fs::is_regular_file(it->path(), ec))  // follows the symlink: a dangling one is skipped
      files.push_back(it->path().lexically_relative(dir).generic_string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

FileLock::FileLock(const fs::path& path) {
  fs::create_directories(path.parent_path());
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw HubError("cannot open the lock file " + path.string() + ": " + strerror(errno));
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    const std::string why = strerror(errno);
    ::close(fd_);
    throw HubError("cannot lock " + path.string() + ": " + why);
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

std::optional<RepoReference> parse_repo_reference(const std::string& s) {
  const size_t at = s.find('@');
  RepoReference r{s.substr(0, at), at == std::string::npos ? "main" : s.substr(at + 1)};
  if (!looks_like_repo_id(r.repo_id) || r.revision.empty()) return std::nullopt;
  return r;
}

std::optional<std::string> resolve_cached_model(const std::string& model,
                                                const HubOptions& options) {
  std::error_code ec;
  const std::optional<RepoReference> ref = parse_repo_reference(model);
  if (model.empty() || fs::exists(model, ec) || !ref) return std::nullopt;
  const std::string hint = "run `diffuse pull " + ref->repo_id +
                           (ref->revision == "main" ? "" : " --revision " + ref->revision) +
                           "` to download it";
  if (options.cache_dir.empty())
    throw HubError(model + " is not a local path, and no Hugging Face cache is known: " + hint);
  const RepoCache cache(options.cache_dir, ref->repo_id);
  const auto commit = cache.cached_commit(ref->revision);
  const fs::path snapshot = commit ? cache.snapshot_dir(*commit) : fs::path();
  if (!commit || !fs::is_regular_file(snapshot / "model_index.json", ec))
    throw HubError(model + " is not a local path, and not in the Hugging Face cache (" +
                   options.cache_dir + "): " + hint);
  return snapshot.string();
}

void write_file_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp =
      path.parent_path() / ("." + path.filename().string() + "." + random_suffix());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
      fs::remove(tmp);
      throw HubError("cannot write " + path.string());
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp);
    throw HubError("cannot write " + path.string() + ": " + ec.message());
  }
}

}  // namespace diffuse::hub
