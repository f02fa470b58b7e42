#include "serve/job.h"

#include <algorithm>

namespace diffuse::serve {

const char* to_string(JobStatus s) {
  switch (s) {
    case JobStatus::Queued:
      return "queued";
    case JobStatus::Running:
      return "running";
    case JobStatus::Done:
      return "done";
    case JobStatus::Error:
      return "error";
    case JobStatus::Cancelled:
      return "cancelled";
  }
  return "unknown";
}

Job::Job(std::string id, JobRequest request) : id_(std::move(id)), request_(std::move(request)) {
  state_.run_count = static_cast<int>(request_.runs.size());
  state_.model = request_.model;
  state_.warnings = request_.warnings;
}

void Job::bump() {
  ++state_.version;
  changed_.notify_all();
}

JobSnapshot Job::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  JobSnapshot s = state_;
  if (s.status == JobStatus::Running)
    s.elapsed_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  return s;
}

JobSnapshot Job::wait_for_change(uint64_t seen, std::chrono::milliseconds timeout) const {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return state_.version > seen; });
  }
  return snapshot();
}

bool Job::finished() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_.status == JobStatus::Done || state_.status == JobStatus::Error ||
         state_.status == JobStatus::Cancelled;
}

JobSnapshot Job::wait_until_finished() const {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] {
      return state_.status == JobStatus::Done || state_.status == JobStatus::Error ||
             state_.status == JobStatus::Cancelled;
    });
  }
  return snapshot();
}

void Job::cancel() {
  std::lock_guard<std::mutex> lock(mutex_);
  cancel_ = true;
  if (state_.status == JobStatus::Queued) {
    state_.status = JobStatus::Cancelled;
    bump();
  }
}

void Job::skip() {
  std::lock_guard<std::mutex> lock(mutex_);
  skip_ = true;
}

bool Job::cancel_requested() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cancel_ || skip_;
}

bool Job::take_skip() {
  std::lock_guard<std::mutex> lock(mutex_);
  const bool s = skip_ && !cancel_;
  skip_ = false;
  return s;
}

void Job::set_running(const std::string& model) {
  std::lock_guard<std::mutex> lock(mutex_);
  state_.status = JobStatus::Running;
  state_.model = model;
  started_ = std::chrono::steady_clock::now();
  bump();
}

void Job::begin_run(int run) {
  std::lock_guard<std::mutex> lock(mutex_);
  state_.run = run;
  state_.step = 0;
  state_.total_steps = 0;
  bump();
}

void Job::set_progress(int step, int total_steps,
                       std::shared_ptr<const std::vector<uint8_t>> preview) {
  std::lock_guard<std::mutex> lock(mutex_);
  state_.step = step;
  state_.total_steps = total_steps;
  if (preview) {
    state_.preview_png = std::move(preview);
    state_.preview_version = state_.version + 1;
  }
  bump();
}

void Job::add_result(std::vector<std::shared_ptr<const JobImage>> images,
                     const std::vector<std::string>& warnings) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& i : images) state_.images.push_back(std::move(i));
  for (const auto& w : warnings)
    if (std::find(state_.warnings.begin(), state_.warnings.end(), w) == state_.warnings.end())
      state_.warnings.push_back(w);
  bump();
}

void Job::finish(JobStatus status, const std::string& error, bool error_is_parameter) {
  std::lock_guard<std::mutex> lock(mutex_);
  state_.status = status;
  state_.error = error;
  state_.error_is_parameter = error_is_parameter;
  state_.elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  bump();
}

}  // namespace diffuse::serve
