// The job queue of a stateless front (`diffuse serve --queue redis://...`): a request becomes an
// entry of diffuse:jobs:<model> for the `diffuse worker` processes, and a local Job that mirrors
// the job's Redis hash (status, step, preview, images), so the HTTP routes wait on and stream it
// exactly as they do in process. Any front can answer for any job: one it does not know is
// loaded from Redis on first request. Settings shared by all fronts live in diffuse:settings.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "serve/job_service.h"
#include "serve/model_registry.h"
#include "serve/redis_client.h"

namespace diffuse::serve {

class RedisJobQueue : public JobService {
 public:
  using SettingsListener = std::function<void(const std::map<std::string, std::string>&)>;
  /// `on_settings` is called (from the poller thread) with diffuse:settings as it changes.
  /// `max_waiting`: jobs of one model's stream not yet taken by a worker (from any front or
  /// `diffuse batch`) beyond which a submit gets 429; 0 = unbounded.
  RedisJobQueue(RedisUrl url, ModelRegistry& models, SettingsListener on_settings,
                size_t max_waiting = 0);
  ~RedisJobQueue() override;

  std::shared_ptr<Job> submit(JobRequest request) override;
  std::shared_ptr<Job> find(const std::string& id) const override;
  void cancel(Job& job) override;
  int position(const Job& job) const override;
  std::shared_ptr<Job> current_or_last() const override;
  std::shared_ptr<Job> running() const override;
  size_t waiting() const override;
  void shutdown() override;
  std::string metrics() const override;
  std::optional<std::string> shared_setting(const std::string& name) const override;
  void set_shared_setting(const std::string& name, const std::string& value) override;

 private:
  /// Runs `f` on the request connection (HttpError 503 when Redis cannot be reached).
  template <class F>
  auto with_redis(F&& f) const;
  void poll();
  void mirror(Job& job, RedisClient& redis);
  /// A1111 batches (batch_size x n_iter): one queue job per image, mirrored into one Job.
  void mirror_batch(Job& job, const std::vector<std::string>& parts, RedisClient& redis);
  void forget_finished();  // callers hold mutex_

  RedisUrl url_;
  ModelRegistry& models_;
  SettingsListener on_settings_;
  mutable std::mutex redis_mutex_;
  mutable std::unique_ptr<RedisClient> redis_;  // for request threads
  mutable std::mutex mutex_;
  mutable std::map<std::string, std::shared_ptr<Job>> jobs_;  // followed by the poller
  std::map<std::string, std::vector<std::string>> batches_;   // job id -> its parts' ids
  size_t max_waiting_ = 0;  // 429 beyond this many untaken jobs of a model (0: unbounded)
  mutable std::map<std::string, std::chrono::steady_clock::time_point> finished_at_;
  mutable std::shared_ptr<Job> last_;
  std::atomic<bool> stopping_{false};
  std::thread poller_;
};

}  // namespace diffuse::serve
