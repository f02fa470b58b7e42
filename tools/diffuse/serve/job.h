// A job: one request's generations (one library call each), run by the JobQueue's worker and
// watched by any number of HTTP readers. All state changes go through the job's mutex and bump a
// version number, so readers can wait for "anything new since version v".
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffuse/diffuse.hpp"

namespace diffuse::serve {

enum class JobStatus { Queued, Running, Done, Error, Cancelled };
const char* to_string(JobStatus s);

struct JobImage {
  std::vector<uint8_t> png;  // with the A1111 `parameters` chunk
  std::string parameters;
  uint64_t seed = 0;
  int width = 0, height = 0;
};

struct JobRequest {
  std::string model;                  // registry name
  std::vector<GenerateOptions> runs;  // one Pipeline::generate call each
  nlohmann::json echo;                // the request as resolved, returned to clients
  std::string origin;                 // "a1111", "openai", "api"
  std::vector<std::string> warnings;  // about the request (a field that had no effect)
};

/// What a reader sees: a consistent copy of the job's state.
struct JobSnapshot {
  JobStatus status = JobStatus::Queued;
  uint64_t version = 0;
  int run = 0, run_count = 0;  // run being generated (0-based) and how many
  int step = 0, total_steps = 0;
  double elapsed_s = 0;             // since the job started running
  bool error_is_parameter = false;  // the error is the request's fault (422), not the server's
  std::string error;
  std::vector<std::string> warnings;
  std::vector<std::shared_ptr<const JobImage>> images;
  std::shared_ptr<const std::vector<uint8_t>> preview_png;  // latest step preview
  uint64_t preview_version = 0;
  std::string model;
};

class Job {
 public:
  Job(std::string id, JobRequest request);

  const std::string& id() const { return id_; }
  const JobRequest& request() const { return request_; }
  JobSnapshot snapshot() const;
  /// Waits until the version exceeds `seen` or `timeout` passes; returns the snapshot.
  JobSnapshot wait_for_change(uint64_t seen, std::chrono::milliseconds timeout) const;
  /// Waits until the job has finished (done, error or cancelled).
  JobSnapshot wait_until_finished() const;
  bool finished() const;

  /// Cancels: a queued job never runs; a running one stops within one step.
  void cancel();
  /// Skips the current generation of a running job and goes on with the next (A1111's skip).
  void skip();
  bool cancel_requested() const;
  /// Consumes a pending skip request.
  bool take_skip();

  // The worker's side.
  void set_running(const std::string& model);
  void set_progress(int step, int total_steps, std::shared_ptr<const std::vector<uint8_t>> preview);
  void begin_run(int run);
  void add_result(std::vector<std::shared_ptr<const JobImage>> images,
                  const std::vector<std::string>& warnings);
  void finish(JobStatus status, const std::string& error = {}, bool error_is_parameter = false);

 private:
  void bump();  // callers hold mutex_

  const std::string id_;
  const JobRequest request_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  JobSnapshot state_;
  std::chrono::steady_clock::time_point started_;
  bool cancel_ = false, skip_ = false;
};

}  // namespace diffuse::serve
