// The loop behind `diffuse worker`: takes jobs from the Redis streams diffuse:jobs:<model> as a
// member of the consumer group `diffuse-workers`, generates, stores the result in the job's hash
// and only then acknowledges it (at-least-once; a rerun overwrites the same hash, so one result
// is kept). Jobs left pending by a dead worker are reclaimed after `claim_idle_ms`; a job
// delivered more than `max_attempts` times, or one that cannot be run at all, goes to the
// dead-letter stream. Redis going away is survived: the worker reconnects with backoff.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "serve/model_registry.h"
#include "serve/redis_client.h"

namespace diffuse::serve {

struct WorkerConfig {
  RedisUrl url;
  std::string name;  // consumer name in the group
  int claim_idle_ms = 60000;
  int max_attempts = 3;
  int result_ttl_s = 86400;
  int block_ms = 500;  // XREADGROUP BLOCK while idle
};

class QueueWorker {
 public:
  /// `stop` is set (by a signal handler) to finish: a running job stops within one step and is
  /// handed back to the queue for another worker.
  QueueWorker(WorkerConfig config, ModelRegistry& models, const std::atomic<bool>& stop,
              std::ostream& log);
  ~QueueWorker();

  /// Serves jobs until `stop`.
  void run();

  struct Entry;  // one stream entry being handled

 private:
  void connect_with_backoff();
  void ensure_groups();
  void heartbeat(bool force);
  std::vector<std::string> streams_by_preference() const;
  bool reclaim_one();
  bool read_some();
  void handle(Entry& entry);
  void run_job(Entry& entry);
  void store_result(Entry& entry, const std::vector<std::pair<std::string, std::string>>& fields);
  void dead_letter(Entry& entry, const std::string& error);
  void hand_back(Entry& entry);
  bool must_read_cancel(Entry& entry);
  void finish_cancelled(Entry& entry);
  void publish_progress(Entry& entry, int step, int total, const std::optional<Image>& preview);
  /// Runs Redis commands that must reach the server, reconnecting until they do (or `stop`).
  bool must(const std::vector<std::vector<std::string>>& transaction);
  void sleep_unless_stopped(std::chrono::milliseconds duration);

  WorkerConfig config_;
  ModelRegistry& models_;
  const std::atomic<bool>& stop_;
  std::ostream& log_;
  std::unique_ptr<RedisClient> redis_;
  std::chrono::steady_clock::time_point last_heartbeat_, last_reclaim_;
  std::string current_job_;
  int current_step_ = 0;
};

}  // namespace diffuse::serve
