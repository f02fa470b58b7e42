#include "hub/hub_download.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <system_error>

#include "diffuse/utilities.hpp"
#include "hub/hub_cache.h"
#include "hub/hub_client.h"
#include "hub/hub_select.h"

namespace diffuse::hub {

namespace {

/// A file as the API lists it: size and (LFS files) sha256 when given.
struct RepoFile {
  std::string name;
  uint64_t size = 0;
  bool has_size = false;
  std::string sha256;
};

/// What HEAD says about a file (huggingface_hub's get_hf_file_metadata).
struct FileMeta {
  std::string etag;
  uint64_t size = 0;
  bool has_size = false;
  bool lfs = false;  // X-Linked-Etag: the ETag is the content's sha256
};

struct Context {
  const PullRequest& request;
  const HubOptions& options;
  std::string endpoint;  // without a trailing '/'
  RepoCache cache;
  HttpClient client;
};

std::string origin_of(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t path = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  return path == std::string::npos ? url : url.substr(0, path);
}

std::string resolve_url(const Context& c, const std::string& commit, const std::string& name) {
  std::string path;
  size_t start = 0;
  while (start <= name.size()) {
    const size_t slash = std::min(name.find('/', start), name.size());
    path += (start ? "/" : "") + url_escape(name.substr(start, slash - start));
    start = slash + 1;
  }
  return c.endpoint + "/" + c.request.repo_id + "/resolve/" + url_escape(commit) + "/" + path;
}

/// The Hub's own words for an error: X-Error-Message, or the JSON body's "error".
std::string hub_message(const HttpResponse& r) {
  std::string m = r.last("x-error-message");
  if (m.empty()) {
    const auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_string()) m = j["error"];
  }
  return m.empty() ? "" : " (" + m + ")";
}

[[noreturn]] void throw_http(const Context& c, const HttpResponse& r, const std::string& url,
                             const std::string& file) {
  const std::string code = r.last("x-error-code");
  const std::string& repo = c.request.repo_id;
  const std::string at = ": HTTP " + std::to_string(r.status) + " from " + url + hub_message(r);
  if (r.status == 401 || r.status == 403) {
    const std::string token =
        c.options.token.empty()
            ? "set HF_TOKEN (or save a token in $HF_HOME/token) to a token that has access"
            : "the token given (HF_TOKEN or $HF_HOME/token) has no access: use one that has";
    throw HubError("access to " + repo + " denied" + at + ". The repository is gated, private " +
                   "or does not exist: " + token +
                   (code == "GatedRepo" ? ", after accepting the model's terms on its page" : ""));
  }
  if (r.status == 404) {
    if (code == "RevisionNotFound")
      throw HubError("revision '" + c.request.revision + "' not found in " + repo + at);
    if (code == "EntryNotFound" || (!file.empty() && code != "RepoNotFound"))
      throw HubError("file '" + file + "' not found in " + repo + at);
    throw HubError("repository " + repo + " not found on " + c.endpoint + at);
  }
  throw HubError((file.empty() ? repo : repo + "/" + file) + at);
}

/// GET /api/models/<repo>/revision/<revision>?blobs=true: the commit and the files.
std::pair<std::string, std::vector<RepoFile>> fetch_repo_info(Context& c) {
  const std::string url = c.endpoint + "/api/models/" + c.request.repo_id + "/revision/" +
                          url_escape(c.request.revision) + "?blobs=true";
  const HttpResponse r = c.client.get(url);
  if (r.status != 200) throw_http(c, r, url, "");
  const auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("sha") || !j["sha"].is_string() || !is_commit_hash(j["sha"]) ||
      !j.contains("siblings") || !j["siblings"].is_array())
    throw HubError(url + ": not a model description (no commit sha or file list)");
  std::vector<RepoFile> files;
  for (const auto& s : j["siblings"]) {
    RepoFile f;
    f.name = s.value("rfilename", "");
    check_relative_filename(f.name);
    if (s.contains("size") && s["size"].is_number_unsigned()) {
      f.size = s["size"];
      f.has_size = true;
    }
    const auto lfs = s.find("lfs");
    if (lfs != s.end() && lfs->is_object()) {
      f.sha256 = lfs->value("sha256", "");
      if (lfs->contains("size") && (*lfs)["size"].is_number_unsigned()) {
        f.size = (*lfs)["size"];
        f.has_size = true;
      }
    }
    files.push_back(std::move(f));
  }
  return {j["sha"].get<std::string>(), std::move(files)};
}

/// HEAD on the resolve URL, following only relative redirects (a renamed repository); the
/// redirect to the CDN is not followed: the metadata is on the Hub's own response.
FileMeta head_file(Context& c, const std::string& commit, const std::string& name) {
  std::string url = resolve_url(c, commit, name);
  HttpResponse r;
  for (int hops = 0;; ++hops) {
    r = c.client.head(url);
    const std::string location = r.last("location");
    if (r.status < 300 || r.status >= 400 || location.empty() || location.front() != '/' ||
        hops == 5)
      break;
    url = origin_of(c.endpoint) + location;
  }
  if (r.status >= 400 || r.status < 200) throw_http(c, r, url, name);
  FileMeta m;
  const std::string linked = r.last("x-linked-etag");
  m.lfs = !linked.empty();
  const std::string etag = m.lfs ? linked : r.last("etag");
  if (etag.empty() || r.last("x-repo-commit").empty())
    throw HubError(url + ": no ETag or X-Repo-Commit in the response (is " + c.endpoint +
                   " a Hugging Face Hub?)");
  m.etag = normalize_etag(etag);
  const std::string size = m.lfs ? r.last("x-linked-size") : r.last("content-length");
  if (!size.empty()) {
    m.size = std::strtoull(size.c_str(), nullptr, 10);
    m.has_size = true;
  }
  return m;
}

uint64_t file_size_or_zero(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

/// Size and sha256 of a finished download; HubError (after removing it) when they are wrong.
void verify_download(const fs::path& part, const std::string& name, uint64_t size, bool has_size,
                     const std::string& sha256) {
  const uint64_t got = file_size_or_zero(part);
  std::string problem;
  if (has_size && got != size)
    problem = "size " + std::to_string(got) + " bytes, expected " + std::to_string(size);
  else if (!sha256.empty() && sha256_file(part.string()) != sha256)
    problem = "sha256 differs from the Hub's " + sha256;
  if (problem.empty()) return;
  fs::remove(part);
  throw HubError("download of " + name + " is corrupt (" + problem + "): removed, run again");
}

/// The GET into blobs/<etag>.incomplete (resumed when it holds a prefix), verified, renamed.
void download_blob(Context& c, const std::string& commit, const RepoFile& f, const FileMeta& m,
                   bool& resumed) {
  const FileLock lock(c.cache.lock_file(m.etag));
  const fs::path blob = c.cache.blob(m.etag), part = c.cache.incomplete(m.etag);
  if (fs::exists(blob)) return;  // another process finished it while we waited
  fs::create_directories(blob.parent_path());
  const uint64_t size = f.has_size ? f.size : m.size;
  const bool has_size = f.has_size || m.has_size;
  const std::string sha =
      !f.sha256.empty() ? f.sha256 : (m.lfs && m.etag.size() == 64 ? m.etag : "");
  uint64_t offset = file_size_or_zero(part);
  if (has_size && offset > size) offset = 0;
  if (!(has_size && offset == size)) {  // a complete .incomplete only needs verifying
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> out(
        std::fopen(part.c_str(), offset > 0 ? "r+b" : "wb"), std::fclose);
    if (!out) throw HubError("cannot write " + part.string() + ": " + strerror(errno));
    const std::string url = resolve_url(c, commit, f.name);
    const ByteProgress progress = [&](uint64_t done, uint64_t total) {
      if (c.options.progress) c.options.progress({f.name, done, total ? total : size, false});
    };
    const HttpResponse r = c.client.download(url, out.get(), offset, progress);
    if (r.status < 200 || r.status >= 300) throw_http(c, r, url, f.name);
    resumed = r.resumed;
  }
  verify_download(part, f.name, size, has_size, sha);
  std::error_code ec;
  fs::rename(part, blob, ec);
  if (ec) throw HubError("cannot move " + part.string() + " into place: " + ec.message());
}

/// One file into snapshots/<commit>/: nothing to do when it is there (a commit never changes).
PulledFile fetch_file(Context& c, const std::string& commit, const RepoFile& f) {
  PulledFile p{f.name, c.cache.snapshot_file(commit, f.name).string(), f.size};
  std::error_code ec;
  if (fs::is_regular_file(p.path, ec)) {
    p.size = file_size_or_zero(p.path);
    return p;
  }
  const FileMeta m = head_file(c, commit, f.name);
  const fs::path blob = c.cache.blob(m.etag);
  const uint64_t expected = f.has_size ? f.size : m.size;
  if (fs::exists(blob) && (!(f.has_size || m.has_size) || file_size_or_zero(blob) == expected)) {
    p.size = file_size_or_zero(blob);  // a blob of the same ETag: reused (huggingface_hub's too)
  } else {
    fs::remove(blob, ec);  // a blob of the wrong size is damaged
    download_blob(c, commit, f, m, p.resumed);
    p.downloaded = true;
    p.size = file_size_or_zero(blob);
  }
  c.cache.link_snapshot(commit, f.name, m.etag);
  if (c.options.progress) c.options.progress({f.name, p.size, p.size, true});
  return p;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> names_of(const std::vector<RepoFile>& files) {
  std::vector<std::string> names;
  for (const auto& f : files) names.push_back(f.name);
  return names;
}

/// The files to pull among `names`; `model_index` reads model_index.json when the pipeline's
/// selection needs it.
Selection choose(const PullRequest& req, const std::vector<std::string>& names,
                 const std::function<std::string()>& model_index) {
  if (!req.include.empty()) {
    Selection s;
    s.files = select_matching(names, req.include);
    if (s.files.empty())
      throw HubError("no file of " + req.repo_id + " matches the --include patterns");
    return s;
  }
  if (std::find(names.begin(), names.end(), "model_index.json") == names.end())
    throw HubError(req.repo_id +
                   " has no model_index.json (not a diffusers pipeline): pass --include GLOB to "
                   "choose the files to download");
  const std::string path = model_index();
  const auto index = nlohmann::json::parse(read_text(path), nullptr, false);
  if (!index.is_object()) throw HubError(path + ": model_index.json is not a JSON object");
  return select_pipeline_files(index, names, req.variant);
}

PullResult pull_offline(const PullRequest& req, const HubOptions& options) {
  const RepoCache cache(options.cache_dir, req.repo_id);
  const auto commit = cache.cached_commit(req.revision);
  std::error_code ec;
  if (!commit || !fs::is_directory(cache.snapshot_dir(*commit), ec))
    throw HubError("HF_HUB_OFFLINE is set and " + req.repo_id + " (revision " + req.revision +
                   ") is not in the cache at " + options.cache_dir +
                   ": pull it once without HF_HUB_OFFLINE");
  PullResult result{*commit, cache.snapshot_dir(*commit).string(), {}, {}};
  const std::vector<std::string> names = cache.snapshot_files(*commit);
  const Selection s =
      choose(req, names, [&] { return cache.snapshot_file(*commit, "model_index.json").string(); });
  result.choices = s.choices;
  for (const auto& name : s.files) {
    const std::string path = cache.snapshot_file(*commit, name).string();
    result.files.push_back({name, path, file_size_or_zero(path)});
  }
  return result;
}

}  // namespace

PullResult pull(const PullRequest& req, const HubOptions& options) {
  check_repo_id(req.repo_id);
  if (req.revision.empty()) throw HubError("empty revision");
  if (!req.variant.empty() && !valid_variant(req.variant))
    throw HubError("--variant '" + req.variant + "': letters, digits and '_' only (e.g. fp16)");
  if (options.offline) return pull_offline(req, options);
  std::string endpoint = options.endpoint;
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  Context c{req, options, endpoint, RepoCache(options.cache_dir, req.repo_id), HttpClient(options)};
  // Named members, not a structured binding: lambdas below capture them (clang 14, which builds
  // the sanitizer suite, cannot capture bindings).
  const auto repo_info = fetch_repo_info(c);
  const std::string& commit = repo_info.first;
  const std::vector<RepoFile>& files = repo_info.second;
  auto find = [&](const std::string& name) -> const RepoFile& {
    for (const auto& f : files)
      if (f.name == name) return f;
    throw HubError("file '" + name + "' is not in " + req.repo_id);
  };
  PullResult result{commit, c.cache.snapshot_dir(commit).string(), {}, {}};
  const Selection s = choose(req, names_of(files), [&] {
    result.files.push_back(fetch_file(c, commit, find("model_index.json")));
    return result.files.back().path;
  });
  result.choices = s.choices;
  for (const auto& name : s.files) {
    const bool done = std::any_of(result.files.begin(), result.files.end(),
                                  [&](const PulledFile& p) { return p.name == name; });
    if (!done) result.files.push_back(fetch_file(c, commit, find(name)));
  }
  c.cache.write_ref(req.revision, commit);
  return result;
}

}  // namespace diffuse::hub
