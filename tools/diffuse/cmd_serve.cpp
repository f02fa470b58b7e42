// diffuse serve: the web app and the HTTP APIs (A1111, OpenAI, diffuse's own) on one port.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>

#include "commands.h"
#include "diffuse/diffuse.hpp"
#include "model_entries.h"
#include "serve/redis_client.h"
#include "serve/server.h"
#include "stop_signals.h"

namespace fs = std::filesystem;

namespace diffuse::cli {

namespace {

struct ServeArgs {
  std::string model, models_dir, api_key, api_key_file, config_dir;
  int max_loaded = 1, max_body_mb = 64;
  LoadOptions load;
  serve::ServerConfig server;
};

std::string read_key_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw FileError(path + ": cannot read the API key file");
  std::string key;
  std::getline(in, key);
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ')) key.pop_back();
  if (key.empty()) throw FileError(path + ": the API key file is empty");
  return key;
}

// The models on offer and the one loaded first.
std::vector<serve::ModelEntry> model_entries(const ServeArgs& a, std::string& current) {
  std::vector<serve::ModelEntry> entries;
  if (!a.models_dir.empty()) entries = serve::scan_model_folder(a.models_dir);
  if (!a.model.empty()) {
    current = add_model_entry(entries, a.model, a.models_dir);
  } else if (!entries.empty()) {
    current = entries.front().name;
  } else {
    std::cerr << "No --model or --models given: serving the built-in demo model (random "
                 "weights, its images are noise).\n";
    current = "demo";
    entries.push_back({current, demo_model_dir(true), false});
  }
  if (entries.empty()) throw ConfigError("--models " + a.models_dir + ": no models found");
  return entries;
}

int run_serve(ServeArgs a, const CLI::App& cmd) {
  // SIGINT/SIGTERM stop the server: the running job is cancelled within one step and the
  // process exits cleanly.
  std::mutex server_mutex;
  serve::Server* running = nullptr;
  bool stop_requested = false;
  StopScope signals([&](int sig) {
    std::cerr << "diffuse serve: " << (sig == SIGINT ? "SIGINT" : "SIGTERM")
              << ", cancelling jobs and stopping\n";
    std::lock_guard<std::mutex> lock(server_mutex);
    stop_requested = true;
    if (running) running->stop();
  });
  a.server.max_body_bytes = static_cast<size_t>(a.max_body_mb) << 20;
  if (!a.api_key_file.empty()) a.server.api_key = read_key_file(a.api_key_file);
  if (!a.api_key.empty()) a.server.api_key = a.api_key;
  for (std::string* dir : {&a.server.lora_dir, &a.server.controlnet_dir})
    if (!dir->empty()) *dir = fs::absolute(*dir).lexically_normal().string();
  std::string current;
  std::vector<serve::ModelEntry> entries = model_entries(a, current);
  LoadOptions lo = a.load;
  lo.config_dir = a.config_dir;
  lo.assets_dir = assets_dir();
  serve::ModelRegistry models(entries, lo, current, static_cast<size_t>(a.max_loaded));
  if (a.server.queue_url.empty()) {
    std::cerr << "diffuse serve: loading " << current << "\n";
    try {
      models.acquire(current);
    } catch (const ConfigError& e) {
      if (cmd.count("--backend") || cmd.count("--compute-units"))
        throw ConfigError(backend_flag(cmd) + ": " + e.what());
      throw;
    }
  } else {
    try {
      serve::parse_redis_url(a.server.queue_url, "--queue");
    } catch (const std::invalid_argument& e) {
      throw ConfigError(e.what());
    }
    std::cerr << "diffuse serve: a front for the workers on " << a.server.queue_url
              << " (models load there)\n";
  }
  serve::Server server(a.server, models);
  if (!server.bind())
    throw ConfigError("cannot listen on " + a.server.host + ":" + std::to_string(a.server.port) +
                      " (in use? choose another with --port)");
  {
    std::lock_guard<std::mutex> lock(server_mutex);
    if (stop_requested) return 0;
    running = &server;
  }
  std::cerr << "diffuse serve: " << entries.size() << " model(s), listening on http://"
            << a.server.host << ":" << server.port() << "/"
            << (a.server.api_key.empty() ? "" : " (API key required)") << std::endl;
  server.serve();
  {
    std::lock_guard<std::mutex> lock(server_mutex);
    running = nullptr;
  }
  server.stop();
  std::cerr << "diffuse serve: stopped\n";
  return 0;
}

}  // namespace

Command add_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* c = app.add_subcommand(
      "serve", "Serve the web app and HTTP APIs (A1111 /sdapi/v1, OpenAI /v1, diffuse /api/v1)");
  c->add_option("--model,-m", a->model,
                "model to load first: a folder or checkpoint file, or an entry name of --models "
                "(default: the first entry, else the built-in demo model)");
  c->add_option("--models", a->models_dir,
                "folder of models offered (diffusers folders, .safetensors/.ckpt files), loaded "
                "on first use");
  c->add_option("--config-dir", a->config_dir, "for single-file checkpoints (see generate)");
  c->add_option("--host", a->server.host, "address to listen on")->capture_default_str();
  c->add_option("--port", a->server.port, "port (0 = any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  c->add_option("--max-queue", a->server.max_queue, "jobs waiting before requests get HTTP 429")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  c->add_option("--api-key", a->api_key, "require 'Authorization: Bearer KEY' on the APIs");
  c->add_option("--api-key-file", a->api_key_file, "read the API key from a file");
  c->add_option("--cors", a->server.cors_origin, "allow cross-origin requests from ORIGIN");
  c->add_option("--max-pixels", a->server.max_pixels, "largest width x height generated")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{64}, uint64_t{1} << 32));
  c->add_option("--max-steps", a->server.max_steps, "most steps per image")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  c->add_option("--max-images", a->server.max_images, "most images per request")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  c->add_option("--max-input-pixels", a->server.max_input_pixels,
                "largest uploaded image (checked from its PNG header, before decoding)")
      ->capture_default_str();
  c->add_option("--max-body-mb", a->max_body_mb, "largest request body in MiB")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  c->add_option("--max-loaded-models", a->max_loaded, "models kept in memory at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  c->add_option("--queue", a->server.queue_url,
                "redis://HOST:PORT/DB: queue jobs for `diffuse worker` processes instead of "
                "generating here (a stateless front; see docs/SCALE-OUT.md)");
  c->add_option("--lora-dir", a->server.lora_dir,
                "folder of LoRA .safetensors files that prompts (<lora:NAME:WEIGHT>) and the "
                "`loras` field name")
      ->check(CLI::ExistingDirectory);
  c->add_option("--controlnet-dir", a->server.controlnet_dir,
                "folder of ControlNet models (diffusers folders, .safetensors/.pth files) that "
                "requests name")
      ->check(CLI::ExistingDirectory);
  c->add_flag("!--no-access-log", a->server.access_log, "do not log requests on stderr");
  add_backend_options(*c, a->load);
  return [a, c] { return run_serve(*a, *c); };
}

}  // namespace diffuse::cli
