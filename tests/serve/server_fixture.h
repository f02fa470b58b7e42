// An in-process `diffuse serve` on a loopback port with the tiny fixture models, and an HTTP
// client for it: what every server test starts from.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/fixtures.h"
#include "diffuse/diffuse.hpp"
#include "serve/codec.h"
#include "serve/server.h"

namespace diffuse::test {

class TestServer {
 public:
  /// Serves tiny-sd1 (current) and tiny-sd2, plus `extra_models`.
  explicit TestServer(serve::ServerConfig config = {},
                      const std::vector<serve::ModelEntry>& extra_models = {}) {
    config.port = 0;
    config.access_log = false;
    std::vector<serve::ModelEntry> entries = {{"tiny-sd1", fixture("models/tiny-sd1"), false},
                                              {"tiny-sd2", fixture("models/tiny-sd2"), false}};
    entries.insert(entries.end(), extra_models.begin(), extra_models.end());
    models_ = std::make_unique<serve::ModelRegistry>(entries, LoadOptions{}, "tiny-sd1");
    server_ = std::make_unique<serve::Server>(config, *models_);
    if (!server_->bind()) throw std::runtime_error("cannot bind a loopback port");
    thread_ = std::thread([this] { server_->serve(); });
    while (!server_->http().is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~TestServer() {
    server_->stop();
    thread_.join();
  }
  int port() const { return server_->port(); }
  serve::Server& server() { return *server_; }

  /// A client with a generous read timeout (generations take seconds under sanitizers).
  std::unique_ptr<httplib::Client> client(int read_timeout_s = 300) const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port());
    c->set_read_timeout(read_timeout_s, 0);
    c->set_connection_timeout(5, 0);
    return c;
  }
  /// POSTs JSON; returns status and parsed body (a discarded value when not JSON).
  std::pair<int, nlohmann::json> post(const std::string& path, const nlohmann::json& body) const {
    return post_raw(path, body.dump());
  }
  std::pair<int, nlohmann::json> post_raw(const std::string& path, const std::string& body) const {
    auto r = client()->Post(path.c_str(), body, "application/json");
    if (!r) return {-1, nullptr};
    return {r->status, nlohmann::json::parse(r->body, nullptr, false)};
  }
  std::pair<int, nlohmann::json> get(const std::string& path) const {
    auto r = client()->Get(path.c_str());
    if (!r) return {-1, nullptr};
    return {r->status, nlohmann::json::parse(r->body, nullptr, false)};
  }
  bool alive() const { return get("/health").first == 200; }

 private:
  std::unique_ptr<serve::ModelRegistry> models_;
  std::unique_ptr<serve::Server> server_;
  std::thread thread_;
};

/// GET /api/v1/jobs/<id> until the job is neither queued nor running (at most 5 minutes); the
/// last answer.
inline nlohmann::json wait_for_job(const TestServer& s, const std::string& id) {
  nlohmann::json job;
  for (int i = 0; i < 30000; ++i) {
    job = s.get("/api/v1/jobs/" + id).second;
    const std::string status = job.is_object() ? job.value("status", "") : "";
    if (job.is_object() && status != "queued" && status != "running") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return job;
}

/// Decodes a base64 PNG from a response.
inline Image decode_b64_png(const std::string& b64) {
  const std::vector<uint8_t> bytes = serve::base64_decode(b64, "test");
  return decode_png(bytes.data(), bytes.size(), "response image");
}

}  // namespace diffuse::test
