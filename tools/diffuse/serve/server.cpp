#include "serve/server.h"

#include <openssl/crypto.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <random>

#include "serve/http_error.h"
#include "serve/job_queue.h"
#include "serve/redis_job_queue.h"

namespace diffuse::serve {

namespace {

// Paths served without an API key: the app shell (it asks for the key) and the health check.
bool is_public_path(const std::string& path) {
  return path == "/" || path == "/index.html" || path == "/app.js" || path == "/app.css" ||
         path == "/favicon.svg" || path == "/health" || path.rfind("/v1/files/images/", 0) == 0;
}

bool key_matches(const std::string& header, const std::string& key) {
  const std::string prefix = "Bearer ";
  if (header.size() != prefix.size() + key.size() || header.rfind(prefix, 0) != 0) return false;
  return CRYPTO_memcmp(header.data() + prefix.size(), key.data(), key.size()) == 0;
}

thread_local std::chrono::steady_clock::time_point g_request_start;

std::string timestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string random_hex_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char id[40];
  std::snprintf(id, sizeof id, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return id;
}

}  // namespace

void send_json(httplib::Response& res, const nlohmann::json& body, int status) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, {{"error", message}, {"detail", message}}, status);
}

std::string ImageStore::put(std::vector<uint8_t> png) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  for (auto it = images_.begin(); it != images_.end();)
    it = now - it->second.created > std::chrono::hours(1) ? images_.erase(it) : std::next(it);
  const std::string id = random_hex_id();
  images_[id] = {std::make_shared<const std::vector<uint8_t>>(std::move(png)), now};
  return id;
}

std::shared_ptr<const std::vector<uint8_t>> ImageStore::get(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = images_.find(id);
  if (it == images_.end() ||
      std::chrono::steady_clock::now() - it->second.created > std::chrono::hours(1))
    return nullptr;
  return it->second.png;
}

namespace {

std::unique_ptr<JobService> make_job_service(const ServerConfig& config, ModelRegistry& models,
                                             A1111Options& options) {
  if (config.queue_url.empty()) return std::make_unique<JobQueue>(models, config.max_queue);
  // Settings another front changed reach this one within half a second.
  auto on_settings = [&models, &options](const std::map<std::string, std::string>& s) {
    if (auto it = s.find("sd_model_checkpoint"); it != s.end() && models.find(it->second))
      models.set_current(it->second);
    if (auto it = s.find("CLIP_stop_at_last_layers"); it != s.end()) {
      std::lock_guard<std::mutex> lock(options.mutex);
      options.clip_stop_at_last_layers = std::atoi(it->second.c_str());
    }
  };
  return std::make_unique<RedisJobQueue>(parse_redis_url(config.queue_url, "--queue"), models,
                                         on_settings, config.max_queue);
}

}  // namespace

Server::Server(ServerConfig config, ModelRegistry& models)
    : config_(std::move(config)),
      models_(models),
      queue_(make_job_service(config_, models_, a1111_)) {
  // Every waiting A1111 request holds a connection thread, and so may each event stream: size the
  // pool so reads (progress, job status, the app) are always served while the queue is full.
  const size_t threads = config_.max_queue + 32;
  http_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_.set_payload_max_length(config_.max_body_bytes);
  install_middleware();
  add_app_routes(*this);
  add_job_routes(*this);
  add_a1111_routes(*this);
  add_openai_routes(*this);
  add_metrics_route(*this);
}

Server::~Server() {
  stop();
}

httplib::Server::Handler Server::handle(JsonHandler handler) const {
  return [handler](const httplib::Request& req, httplib::Response& res) {
    try {
      handler(req, res);
    } catch (const HttpError& e) {
      if (e.retry_after_s() > 0) res.set_header("Retry-After", std::to_string(e.retry_after_s()));
      send_error(res, e.status(), e.what());
    } catch (const ConfigError& e) {
      send_error(res, 422, e.what());
    } catch (const FileError& e) {
      send_error(res, 422, e.what());
    } catch (const std::bad_alloc&) {
      send_error(res, 503, "out of memory");
    } catch (const std::exception& e) {
      send_error(res, 500, std::string("internal error: ") + e.what());
    }
  };
}

void Server::install_middleware() {
  http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    g_request_start = std::chrono::steady_clock::now();
    if (req.method == "OPTIONS" || config_.api_key.empty() || is_public_path(req.path))
      return httplib::Server::HandlerResponse::Unhandled;
    if (key_matches(req.get_header_value("Authorization"), config_.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    send_error(res, 401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'");
    return httplib::Server::HandlerResponse::Handled;
  });
  http_.set_post_routing_handler([this](const httplib::Request&, httplib::Response& res) {
    if (config_.cors_origin.empty()) return;
    res.set_header("Access-Control-Allow-Origin", config_.cors_origin);
    res.set_header("Vary", "Origin");
  });
  if (!config_.cors_origin.empty()) {
    http_.Options(".*", [this](const httplib::Request&, httplib::Response& res) {
      res.set_header("Access-Control-Allow-Origin", config_.cors_origin);
      res.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
      res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
      res.set_header("Access-Control-Max-Age", "600");
      res.status = 204;
    });
  }
  // Errors httplib produces itself (404 no route, 413 body too large, 400 unparsable request)
  // get the same JSON body as ours.
  http_.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404)
      send_error(res, 404, "no route " + req.method + " " + req.path);
    else if (res.status == 413)
      send_error(res, 413, "request body too large");
    else
      send_error(res, res.status, "HTTP error " + std::to_string(res.status));
  });
  if (config_.access_log) {
    http_.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                                  g_request_start)
                            .count();
      char line[512];
      std::snprintf(line, sizeof line, "%s %s \"%s %s\" %d %zu %.0fms\n", timestamp().c_str(),
                    req.remote_addr.c_str(), req.method.c_str(), req.path.c_str(), res.status,
                    res.body.size(), ms);
      std::cerr << line << std::flush;
    });
  }
}

bool Server::bind() {
  if (config_.port == 0) {
    port_ = http_.bind_to_any_port(config_.host);
    return port_ > 0;
  }
  port_ = config_.port;
  return http_.bind_to_port(config_.host, config_.port);
}

void Server::serve() {
  http_.listen_after_bind();
}

void Server::stop() {
  queue_->shutdown();
  http_.stop();
}

}  // namespace diffuse::serve
