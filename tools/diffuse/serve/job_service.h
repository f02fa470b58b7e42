// What the HTTP routes need from "the queue", so they run unchanged over either implementation:
// JobQueue (in process: one worker thread in this server) or RedisJobQueue (`serve --queue`: a
// stateless front whose jobs run on `diffuse worker` processes). Both hand out Job objects, which
// the routes read and wait on the same way.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "serve/job.h"

namespace diffuse::serve {

class JobService {
 public:
  virtual ~JobService() = default;

  /// Queues a job (HttpError 429 when full, 503 when the queue cannot be reached).
  virtual std::shared_ptr<Job> submit(JobRequest request) = 0;
  virtual std::shared_ptr<Job> find(const std::string& id) const = 0;
  /// Cancels: a waiting job never runs, a running one stops within one step.
  virtual void cancel(Job& job) = 0;
  /// 0 for the next job to run, -1 when the job is not waiting (or the position is unknown).
  virtual int position(const Job& job) const = 0;
  /// The running job, or else the most recently finished one (A1111's progress reports it).
  virtual std::shared_ptr<Job> current_or_last() const = 0;
  virtual std::shared_ptr<Job> running() const = 0;
  virtual size_t waiting() const = 0;
  /// Cancels what this process runs or waits for and stops taking jobs.
  virtual void shutdown() = 0;
  /// GET /metrics: Prometheus text exposition (queue lengths, jobs done/failed, step time).
  virtual std::string metrics() const = 0;
  /// Settings every front shares (A1111's sd_model_checkpoint, CLIP_stop_at_last_layers): kept
  /// in Redis with --queue; nullopt/no-op in process, where the server's own fields hold them.
  virtual std::optional<std::string> shared_setting(const std::string& name) const = 0;
  virtual void set_shared_setting(const std::string& name, const std::string& value) = 0;
};

/// One Prometheus sample line: `name{labels} value`.
std::string metric_line(const std::string& name, const std::string& labels, double value);

}  // namespace diffuse::serve
