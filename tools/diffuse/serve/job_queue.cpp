#include "serve/job_queue.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "serve/http_error.h"

namespace diffuse::serve {

namespace {

// Job ids are unguessable (another client cannot cancel or read a job it did not create) and
// ordered by creation for the logs.
std::string make_job_id(uint64_t counter) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char id[48];
  std::snprintf(id, sizeof id, "j%llu-%016llx", static_cast<unsigned long long>(counter),
                static_cast<unsigned long long>(rng()));
  return id;
}

constexpr size_t kMaxRetainedJobs = 512;

// A1111 writes "Model hash: <short hash>, Model: <name>" into its infotext.
std::string with_model_hash(std::string text, const std::string& hash) {
  const size_t at = text.rfind(", Model: ");
  if (at != std::string::npos) text.insert(at, ", Model hash: " + hash);
  return text;
}

}  // namespace

JobQueue::JobQueue(ModelRegistry& models, size_t max_queue, std::chrono::seconds keep_finished)
    : models_(models), max_queue_(max_queue), keep_finished_(keep_finished) {
  worker_ = std::thread([this] { work(); });
}

JobQueue::~JobQueue() {
  shutdown();
  if (worker_.joinable()) worker_.join();
}

std::shared_ptr<Job> JobQueue::submit(JobRequest request) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_) throw HttpError(503, "the server is shutting down");
  forget_expired();
  if (waiting_.size() >= max_queue_)
    throw HttpError(
        429, "the queue is full (" + std::to_string(max_queue_) + " jobs waiting); try again later",
        10);
  auto job = std::make_shared<Job>(make_job_id(next_id_++), std::move(request));
  waiting_.push_back(job);
  jobs_[job->id()] = job;
  wake_.notify_one();
  return job;
}

std::shared_ptr<Job> JobQueue::find(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

void JobQueue::cancel(Job& job) {
  job.cancel();
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = std::find_if(waiting_.begin(), waiting_.end(),
                         [&](const std::shared_ptr<Job>& j) { return j.get() == &job; });
  if (it != waiting_.end()) {
    waiting_.erase(it);
    finished_at_[job.id()] = std::chrono::steady_clock::now();
  }
}

int JobQueue::position(const Job& job) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < waiting_.size(); ++i)
    if (waiting_[i].get() == &job) return static_cast<int>(i);
  return -1;
}

std::shared_ptr<Job> JobQueue::current_or_last() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return running_ ? running_ : last_;
}

std::shared_ptr<Job> JobQueue::running() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return running_;
}

size_t JobQueue::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiting_.size();
}

void JobQueue::shutdown() {
  std::lock_guard<std::mutex> lock(mutex_);
  stopping_ = true;
  for (auto& j : waiting_) j->cancel();
  if (running_) running_->cancel();
  wake_.notify_all();
}

void JobQueue::forget_expired() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = finished_at_.begin(); it != finished_at_.end();) {
    const bool expired =
        now - it->second > keep_finished_ || finished_at_.size() > kMaxRetainedJobs;
    if (!expired) {
      ++it;
      continue;
    }
    jobs_.erase(it->first);
    it = finished_at_.erase(it);
  }
}

void JobQueue::work() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
      if (waiting_.empty()) return;  // stopping, and nothing left
      job = waiting_.front();
      waiting_.pop_front();
      running_ = job;
    }
    if (!job->finished()) run(*job);  // a job cancelled while queued is already finished
    const JobSnapshot s = job->snapshot();
    std::lock_guard<std::mutex> lock(mutex_);
    done_ += s.status == JobStatus::Done;
    failed_ += s.status == JobStatus::Error;
    cancelled_ += s.status == JobStatus::Cancelled;
    running_.reset();
    last_ = job;
    finished_at_[job->id()] = std::chrono::steady_clock::now();
  }
}

void JobQueue::run(Job& job) {
  job.set_running(job.request().model);
  try {
    std::shared_ptr<Pipeline> pipeline = models_.acquire(job.request().model);
    for (size_t i = 0; i < job.request().runs.size(); ++i) {
      if (job.cancel_requested() && !job.take_skip()) throw Cancelled();
      job.begin_run(static_cast<int>(i));
      try {
        run_one(job, *pipeline, i);
      } catch (const Cancelled&) {
        if (!job.take_skip()) throw;  // a skip drops this image only
      }
    }
    job.finish(JobStatus::Done);
  } catch (const Cancelled&) {
    job.finish(JobStatus::Cancelled);
  } catch (const HttpError& e) {
    job.finish(JobStatus::Error, e.what(), e.status() < 500);
  } catch (const ConfigError& e) {
    job.finish(JobStatus::Error, e.what(), true);
  } catch (const std::bad_alloc&) {
    job.finish(JobStatus::Error, "out of memory");
  } catch (const std::exception& e) {
    job.finish(JobStatus::Error, e.what());
  }
}

void JobQueue::run_one(Job& job, Pipeline& pipeline, size_t index) {
  const GenerateOptions& options = job.request().runs[index];
  GenerationResult r = pipeline.generate(options, [&job, &options](const Progress& p) {
    std::shared_ptr<const std::vector<uint8_t>> preview;
    if (options.preview && p.preview)
      preview = std::make_shared<const std::vector<uint8_t>>(encode_png(*p.preview));
    job.set_progress(p.step, p.total_steps, std::move(preview));
    return !job.cancel_requested();
  });
  std::vector<std::shared_ptr<const JobImage>> images;
  const std::string hash = models_.short_hash(job.request().model);
  for (size_t i = 0; i < r.images.size(); ++i) {
    auto image = std::make_shared<JobImage>();
    image->parameters = with_model_hash(r.parameters_text(i), hash);
    image->png = encode_png(r.images[i], image->parameters);
    image->seed = r.seed;
    image->width = r.images[i].width;
    image->height = r.images[i].height;
    images.push_back(std::move(image));
  }
  job.add_result(std::move(images), r.warnings);
  std::lock_guard<std::mutex> lock(mutex_);
  steps_ += static_cast<uint64_t>(r.options.steps);
  denoise_seconds_ += r.times.denoise_s;
}

std::string JobQueue::metrics() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out = "# TYPE diffuse_queue_waiting gauge\n" +
                    metric_line("diffuse_queue_waiting", "", double(waiting_.size())) +
                    "# TYPE diffuse_jobs_running gauge\n" +
                    metric_line("diffuse_jobs_running", "", running_ ? 1 : 0) +
                    "# TYPE diffuse_jobs_total counter\n" +
                    metric_line("diffuse_jobs_total", "status=\"done\"", double(done_)) +
                    metric_line("diffuse_jobs_total", "status=\"failed\"", double(failed_)) +
                    metric_line("diffuse_jobs_total", "status=\"cancelled\"", double(cancelled_)) +
                    "# TYPE diffuse_denoise_steps_total counter\n" +
                    metric_line("diffuse_denoise_steps_total", "", double(steps_)) +
                    "# TYPE diffuse_denoise_seconds_total counter\n" +
                    metric_line("diffuse_denoise_seconds_total", "", denoise_seconds_);
  return out;
}

std::string metric_line(const std::string& name, const std::string& labels, double value) {
  char number[64];
  std::snprintf(number, sizeof number, "%.17g", value);
  return name + (labels.empty() ? "" : "{" + labels + "}") + " " + number + "\n";
}

}  // namespace diffuse::serve
