// JobQueue: a bounded FIFO of jobs and the one worker thread that runs them, one generation at a
// time (a generation already uses every core). Finished jobs stay readable for `keep_finished`.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "serve/job.h"
#include "serve/job_service.h"
#include "serve/model_registry.h"

namespace diffuse::serve {

class JobQueue : public JobService {
 public:
  JobQueue(ModelRegistry& models, size_t max_queue,
           std::chrono::seconds keep_finished = std::chrono::hours(1));
  ~JobQueue() override;
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  /// Queues a job (HttpError 429 with Retry-After when `max_queue` jobs are already waiting).
  std::shared_ptr<Job> submit(JobRequest request) override;
  std::shared_ptr<Job> find(const std::string& id) const override;
  /// Cancels a job: a waiting one leaves the queue at once (freeing its place), a running one
  /// stops within one step.
  void cancel(Job& job) override;
  /// 0 for the next job to run, -1 when the job is not waiting.
  int position(const Job& job) const override;
  /// The running job, or else the most recently finished one (A1111's progress reports it).
  std::shared_ptr<Job> current_or_last() const override;
  std::shared_ptr<Job> running() const override;
  size_t waiting() const override;
  size_t max_queue() const { return max_queue_; }
  std::string metrics() const override;
  std::optional<std::string> shared_setting(const std::string&) const override { return {}; }
  void set_shared_setting(const std::string&, const std::string&) override {}

  /// Cancels the running and every queued job, and stops the worker once it is idle.
  void shutdown() override;

 private:
  void work();
  void run(Job& job);
  void run_one(Job& job, Pipeline& pipeline, size_t index);
  void forget_expired();  // callers hold mutex_

  ModelRegistry& models_;
  const size_t max_queue_;
  const std::chrono::seconds keep_finished_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> waiting_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::map<std::string, std::chrono::steady_clock::time_point> finished_at_;
  std::shared_ptr<Job> running_, last_;
  uint64_t next_id_ = 1;
  // For /metrics.
  uint64_t done_ = 0, failed_ = 0, cancelled_ = 0, steps_ = 0;
  double denoise_seconds_ = 0;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace diffuse::serve
