// A fake Hugging Face Hub on a loopback port (cpp-httplib, in-process): the model API
// (/api/models/<repo>/revision/<rev>), resolve URLs with the Hub's headers (X-Repo-Commit, quoted
// ETag; for LFS files a 302 to /cdn/<sha256> with X-Linked-Etag and X-Linked-Size), Range requests
// on the CDN, 401 for a gated repository without the token, 404s with X-Error-Code. Every request
// is recorded before it is answered.
#pragma once

#include <httplib.h>
#include <openssl/evp.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace diffuse::test {

inline std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

struct FakeFile {
  std::string content;
  bool lfs = false;
  bool corrupt = false;  // the CDN serves different bytes than the listed sha256
  std::string etag() const { return lfs ? sha256_hex(content) : sha256_hex(content).substr(0, 40); }
};

struct FakeRepo {
  std::string commit = std::string(40, 'a');
  std::map<std::string, FakeFile> files;
  bool gated = false;
};

/// A repository holding the files of a folder (recursively); *.safetensors, *.bin and *.ckpt as
/// LFS.
inline FakeRepo repo_from_folder(const std::string& dir) {
  FakeRepo r;
  namespace fs = std::filesystem;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string ext = e.path().extension().string();
    r.files[fs::relative(e.path(), dir).generic_string()] = {
        ss.str(), ext == ".safetensors" || ext == ".bin" || ext == ".ckpt"};
  }
  return r;
}

class FakeHub {
 public:
  struct Request {
    std::string method, path, range, authorization;
  };

  FakeHub() {
    server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response&) {
      std::lock_guard<std::mutex> lock(mutex_);
      requests_.push_back({req.method, req.path, req.get_header_value("Range"),
                           req.get_header_value("Authorization")});
      return httplib::Server::HandlerResponse::Unhandled;
    });
    server_.Get(R"(/api/models/([^/]+)/([^/]+)/revision/(.+))",
                [this](const httplib::Request& req, httplib::Response& res) { api(req, res); });
    server_.Get(R"(/([^/]+)/([^/]+)/resolve/([^/]+)/(.+))",
                [this](const httplib::Request& req, httplib::Response& res) { resolve(req, res); });
    server_.Get(R"(/cdn/([0-9a-f]+))",
                [this](const httplib::Request& req, httplib::Response& res) { cdn(req, res); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("cannot bind a loopback port");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ~FakeHub() {
    server_.stop();
    thread_.join();
  }

  void add_repo(const std::string& id, FakeRepo repo) {
    std::lock_guard<std::mutex> lock(mutex_);
    repos_[id] = std::move(repo);
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Request> requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }
  void clear_requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    requests_.clear();
  }
  /// Requests whose method is `method` and path starts with `prefix`.
  size_t count(const std::string& method, const std::string& prefix = "/") const {
    size_t n = 0;
    for (const auto& r : requests())
      if (r.method == method && r.path.rfind(prefix, 0) == 0) ++n;
    return n;
  }
  std::string token = "secret-token";

 private:
  /// The repository `org/name` when the request may see it; otherwise answers the error.
  const FakeRepo* find_repo(const httplib::Request& req, httplib::Response& res) {
    auto it = repos_.find(req.matches[1].str() + "/" + req.matches[2].str());
    if (it == repos_.end()) return error(res, 404, "RepoNotFound", "Repository not found");
    if (it->second.gated && req.get_header_value("Authorization") != "Bearer " + token)
      return error(res, 401, "GatedRepo", "Access to this model is restricted");
    const std::string rev = req.matches[3];
    if (rev != "main" && rev != it->second.commit)
      return error(res, 404, "RevisionNotFound", "Invalid rev id: " + rev);
    return &it->second;
  }
  static const FakeRepo* error(httplib::Response& res, int status, const std::string& code,
                               const std::string& message) {
    res.status = status;
    res.set_header("X-Error-Code", code);
    res.set_content(nlohmann::json{{"error", message}}.dump(), "application/json");
    return nullptr;
  }

  void api(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mutex_);
    const FakeRepo* repo = find_repo(req, res);
    if (!repo) return;
    nlohmann::json siblings = nlohmann::json::array();
    for (const auto& [name, f] : repo->files) {
      nlohmann::json s = {{"rfilename", name}, {"size", f.content.size()}};
      if (f.lfs)
        s["lfs"] = {
            {"sha256", sha256_hex(f.content)}, {"size", f.content.size()}, {"pointerSize", 134}};
      siblings.push_back(s);
    }
    res.set_content(nlohmann::json{{"sha", repo->commit}, {"siblings", siblings}}.dump(),
                    "application/json");
  }

  void resolve(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mutex_);
    const FakeRepo* repo = find_repo(req, res);
    if (!repo) return;
    auto it = repo->files.find(req.matches[4].str());
    if (it == repo->files.end()) {
      error(res, 404, "EntryNotFound", "Entry not found");
      return;
    }
    const FakeFile& f = it->second;
    res.set_header("X-Repo-Commit", repo->commit);
    if (f.lfs) {
      res.set_header("X-Linked-Etag", "\"" + f.etag() + "\"");
      res.set_header("X-Linked-Size", std::to_string(f.content.size()));
      res.set_header("ETag", "\"" + std::string(40, 'e') + "\"");
      res.set_redirect(endpoint() + "/cdn/" + f.etag(), 302);
      return;
    }
    res.set_header("ETag", "\"" + f.etag() + "\"");
    res.set_content(f.content, "application/octet-stream");
  }

  void cdn(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [id, repo] : repos_) {
      for (const auto& [name, f] : repo.files) {
        if (!f.lfs || f.etag() != req.matches[1].str()) continue;
        std::string content = f.content;
        if (f.corrupt && !content.empty()) content[content.size() / 2] ^= 0x55;
        res.set_content(content, "application/octet-stream");  // httplib answers a Range: 206
        return;
      }
    }
    res.status = 404;
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::map<std::string, FakeRepo> repos_;
  std::vector<Request> requests_;
};

}  // namespace diffuse::test
