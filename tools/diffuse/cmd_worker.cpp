// diffuse worker: one of N processes taking generation jobs from a Redis queue (see
// docs/SCALE-OUT.md and serve/queue_worker.h).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <thread>

#include "commands.h"
#include "diffuse/diffuse.hpp"
#include "model_entries.h"
#include "serve/queue_worker.h"
#include "stop_signals.h"

namespace diffuse::cli {

namespace {

std::atomic<bool> g_stop{false};

struct WorkerArgs {
  std::string queue, models_dir, config_dir;
  std::vector<std::string> preload;
  int max_loaded = 1, concurrency = 1;
  LoadOptions load;
  serve::WorkerConfig worker;
};

std::string default_worker_name() {
  char host[256] = "host";
  gethostname(host, sizeof host - 1);
  return std::string(host) + "-" + std::to_string(getpid());
}

// One consumer: its own pipelines (so consumers never wait on each other's model) and its own
// Redis connection.
void serve_as_consumer(const WorkerArgs& a, serve::WorkerConfig config,
                       const std::vector<serve::ModelEntry>& entries, const LoadOptions& lo) {
  serve::ModelRegistry models(entries, lo, entries.front().name, static_cast<size_t>(a.max_loaded));
  for (const auto& name : a.preload) {
    std::cerr << "diffuse worker " << config.name << ": loading " << name << "\n";
    models.acquire(name);
  }
  serve::QueueWorker worker(config, models, g_stop, std::cerr);
  std::cerr << "diffuse worker " << config.name << ": " << entries.size() << " model(s), queue "
            << config.url.text() << std::endl;
  worker.run();
  std::cerr << "diffuse worker " << config.name << ": stopped" << std::endl;
}

int run_worker(WorkerArgs a) {
  try {
    a.worker.url = serve::parse_redis_url(a.queue, "--queue");
  } catch (const std::invalid_argument& e) {
    throw ConfigError(e.what());
  }
  if (a.worker.name.empty()) a.worker.name = default_worker_name();
  std::vector<serve::ModelEntry> entries;
  if (!a.models_dir.empty()) entries = serve::scan_model_folder(a.models_dir);
  // Each --model: an entry of --models, or a path or cached repo id added as an entry.
  for (std::string& model : a.preload) model = add_model_entry(entries, model, a.models_dir);
  if (entries.empty())
    throw ConfigError(a.models_dir.empty() ? "give --models FOLDER or --model MODEL"
                                           : "--models " + a.models_dir + ": no models found");
  LoadOptions lo = a.load;
  lo.config_dir = a.config_dir;
  lo.assets_dir = assets_dir();
  // --concurrency N: N consumers in this process, sharing the cores unless --threads says.
  lo.threads =
      a.load.threads > 0
          ? a.load.threads
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / a.concurrency);
  // SIGTERM/SIGINT: the running jobs stop within one step and go back on the queue.
  StopScope stop_on_signal([](int) { g_stop = true; });
  if (a.concurrency == 1) {
    serve_as_consumer(a, a.worker, entries, lo);
    return 0;
  }
  std::vector<std::thread> consumers;
  std::atomic<int> failures{0};
  for (int i = 0; i < a.concurrency; ++i) {
    serve::WorkerConfig config = a.worker;
    config.name = a.worker.name + "-" + std::to_string(i);
    consumers.emplace_back([&, config] {
      try {
        serve_as_consumer(a, config, entries, lo);
      } catch (const std::exception& e) {
        std::cerr << "error: diffuse worker " << config.name << ": " << e.what() << std::endl;
        ++failures;
        g_stop = true;  // one consumer failing to start stops the process, as with one
      }
    });
  }
  for (auto& t : consumers) t.join();
  return failures > 0 ? 1 : 0;
}

}  // namespace

Command add_worker(CLI::App& app) {
  auto a = std::make_shared<WorkerArgs>();
  CLI::App* c = app.add_subcommand(
      "worker", "Take generation jobs from a Redis queue (diffuse:jobs:<model> streams)");
  c->add_option("--queue", a->queue, "Redis queue, redis://HOST:PORT/DB")->required();
  c->add_option("--models", a->models_dir, "folder of models served (one stream each)");
  c->add_option("--model,-m", a->preload,
                "models to load before taking jobs, each served too: an entry of --models, a "
                "folder or checkpoint file, or org/name pulled with `diffuse pull` (served as "
                "\"name\")");
  c->add_option("--config-dir", a->config_dir, "for single-file checkpoints (see generate)");
  c->add_option("--name", a->worker.name, "consumer name in the group (default: host-pid)");
  c->add_option("--claim-idle-ms", a->worker.claim_idle_ms,
                "reclaim jobs pending this long on a dead worker")
      ->capture_default_str()
      ->check(CLI::Range(100, 86400000));
  c->add_option("--max-attempts", a->worker.max_attempts,
                "deliveries before a job goes to diffuse:dead")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  c->add_option("--result-ttl", a->worker.result_ttl_s, "seconds results are kept in Redis")
      ->capture_default_str()
      ->check(CLI::Range(1, 365 * 86400));
  c->add_option("--concurrency", a->concurrency,
                "jobs run at once: consumers in this process, each with its own pipelines "
                "(memory) and --threads (default: the cores divided among them)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  c->add_option("--max-loaded-models", a->max_loaded, "models kept in memory at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  add_backend_options(*c, a->load);
  return [a] { return run_worker(*a); };
}

}  // namespace diffuse::cli
