// The HTTP server behind `diffuse serve`: cpp-httplib for HTTP, a JobService for generations (the
// in-process JobQueue, or RedisJobQueue with --queue), and
// the route groups (web app, diffuse's job API, A1111's /sdapi/v1, OpenAI's /v1) registered on it.
// Cross-cutting rules live here: API-key auth, CORS, body limits, JSON errors, the access log.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "serve/job_service.h"
#include "serve/model_registry.h"

namespace diffuse::serve {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 7860;
  size_t max_queue = 8;               // jobs waiting behind the running one
  std::string api_key;                // empty: no auth
  std::string cors_origin;            // empty: no CORS headers
  uint64_t max_pixels = 2048 * 2048;  // width * height of a generation
  int max_steps = 500;
  int max_images = 16;                       // images per request
  uint64_t max_input_pixels = 4096 * 4096;   // decoded init images
  size_t max_body_bytes = size_t{64} << 20;  // request bodies
  bool access_log = true;                    // one line per request on stderr
  std::string queue_url;       // redis://HOST:PORT/DB: a stateless front for `diffuse worker`s
  std::string lora_dir;        // <lora:NAME:W> and `loras` name NAME.safetensors here
  std::string controlnet_dir;  // ControlNet models: folders, NAME.safetensors, NAME.pth
};

/// Stored images the OpenAI route hands out as URLs (kept for an hour).
class ImageStore {
 public:
  std::string put(std::vector<uint8_t> png);
  std::shared_ptr<const std::vector<uint8_t>> get(const std::string& id);

 private:
  std::mutex mutex_;
  struct Entry {
    std::shared_ptr<const std::vector<uint8_t>> png;
    std::chrono::steady_clock::time_point created;
  };
  std::map<std::string, Entry> images_;
};

/// The A1111 options the server keeps (POST /sdapi/v1/options).
struct A1111Options {
  std::mutex mutex;
  int clip_stop_at_last_layers = 1;
};

class Server {
 public:
  Server(ServerConfig config, ModelRegistry& models);
  ~Server();

  /// Binds and serves until stop(); returns false when the address cannot be bound.
  bool bind();
  int port() const { return port_; }
  void serve();
  /// Cancels the jobs and stops listening (any thread).
  void stop();

  const ServerConfig& config() const { return config_; }
  ModelRegistry& models() { return models_; }
  JobService& queue() { return *queue_; }
  ImageStore& images() { return images_; }
  A1111Options& a1111_options() { return a1111_; }
  httplib::Server& http() { return http_; }

  using JsonHandler = std::function<void(const httplib::Request&, httplib::Response&)>;
  /// Wraps a handler: HttpError and diffuse::Error become JSON error responses.
  httplib::Server::Handler handle(JsonHandler handler) const;

 private:
  void install_middleware();

  ServerConfig config_;
  ModelRegistry& models_;
  A1111Options a1111_;  // before queue_: its settings listener writes here
  std::unique_ptr<JobService> queue_;
  ImageStore images_;
  httplib::Server http_;
  int port_ = 0;
};

/// Sends `body` as JSON with `status`.
void send_json(httplib::Response& res, const nlohmann::json& body, int status = 200);
/// The JSON error body every route uses: {"error": message, "detail": message} (A1111/FastAPI
/// clients read "detail").
void send_error(httplib::Response& res, int status, const std::string& message);

void add_app_routes(Server& server);
void add_job_routes(Server& server);
void add_a1111_routes(Server& server);
void add_openai_routes(Server& server);
/// GET /metrics: Prometheus text from the job service.
void add_metrics_route(Server& server);

}  // namespace diffuse::serve
