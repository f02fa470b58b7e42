#include "serve/redis_job_queue.h"

#include <random>

#include "serve/codec.h"
#include "serve/http_error.h"
#include "serve/queue_job.h"
#include "serve/queue_layout.h"

namespace diffuse::serve {

namespace keys = queue_keys;
using Clock = std::chrono::steady_clock;

namespace {

std::string random_job_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char id[24];
  std::snprintf(id, sizeof id, "q%016llx", static_cast<unsigned long long>(rng()));
  return id;
}

// The library's options as a queue job (queue_job.h), the format the workers read.
nlohmann::json queue_json(const std::string& id, const std::string& model,
                          const GenerateOptions& o) {
  nlohmann::json j = {{"id", id},
                      {"model", model},
                      {"prompt", o.prompt},
                      {"steps", o.steps},
                      {"guidance_scale", o.guidance_scale},
                      {"seed", o.seed},
                      {"scheduler", o.scheduler},
                      {"timestep_spacing", o.timestep_spacing},
                      {"width", o.width},
                      {"height", o.height},
                      {"image_count", o.image_count},
                      {"rng", o.rng},
                      {"clip_skip", o.clip_skip},
                      {"prompt_syntax", o.prompt_syntax},
                      {"vae_tiling", o.vae_tiling},
                      {"vae_tile_size", o.vae_tile_size}};
  // Absent means "no negative prompt" (zeros on SDXL models that force them), not "".
  if (o.negative_prompt) j["negative_prompt"] = *o.negative_prompt;
  if (o.karras_sigmas) j["karras_sigmas"] = *o.karras_sigmas;
  if (o.eta) j["eta"] = *o.eta;
  if (o.init_image) {
    j["init_image"] = base64_encode(encode_png(*o.init_image));  // lossless: it came from 8 bits
    if (o.strength) j["strength"] = *o.strength;
    if (o.mask_image) j["mask_image"] = base64_encode(encode_png(*o.mask_image));
    if (o.mask_blur) j["mask_blur"] = o.mask_blur;
    if (o.mask_crop) j["mask_crop"] = *o.mask_crop;
    if (o.masked_content != "original") j["masked_content"] = o.masked_content;
  }
  return j;
}

int64_t integer_field(const RedisValue& flat, const std::string& name) {
  for (size_t i = 0; i + 1 < flat.size(); i += 2)
    if (flat[i].str == name) return flat[i + 1].integer;
  return 0;
}

// Entries of a stream no worker has taken yet: the consumer group's lag, or the whole stream
// before any worker has created the group.
size_t undelivered(RedisClient& r, const std::string& stream) {
  RedisValue groups;
  try {
    groups = r.command({"XINFO", "GROUPS", stream});
  } catch (const RedisReplyError&) {
    return 0;  // no stream yet
  }
  for (const auto& g : groups.elements)
    if (field_of(g, "name") == queue_keys::kGroup) return size_t(integer_field(g, "lag"));
  return size_t(r.command({"XLEN", stream}).integer);
}

double number(const std::string& text) {
  return text.empty() ? 0.0 : std::stod(text);
}

}  // namespace

RedisJobQueue::RedisJobQueue(RedisUrl url, ModelRegistry& models, SettingsListener on_settings,
                             size_t max_waiting)
    : url_(std::move(url)),
      models_(models),
      on_settings_(std::move(on_settings)),
      max_waiting_(max_waiting) {
  poller_ = std::thread([this] { poll(); });
}

RedisJobQueue::~RedisJobQueue() {
  shutdown();
  if (poller_.joinable()) poller_.join();
}

template <class F>
auto RedisJobQueue::with_redis(F&& f) const {
  std::lock_guard<std::mutex> lock(redis_mutex_);
  try {
    if (!redis_) redis_ = std::make_unique<RedisClient>(url_, std::chrono::seconds(2));
    return f(*redis_);
  } catch (const RedisConnectionError& e) {
    redis_.reset();
    throw HttpError(503, std::string("the job queue is unavailable: ") + e.what(), 5);
  }
}

std::shared_ptr<Job> RedisJobQueue::submit(JobRequest request) {
  if (stopping_) throw HttpError(503, "the server is shutting down");
  if (max_waiting_ > 0) {
    const size_t waiting =
        with_redis([&](RedisClient& r) { return undelivered(r, keys::stream(request.model)); });
    if (waiting + request.runs.size() > max_waiting_)
      throw HttpError(429,
                      "the queue for " + request.model + " is full (" + std::to_string(waiting) +
                          " jobs waiting for a worker); try again later",
                      10);
  }
  const std::string id = random_job_id();
  // One queue job per run: an A1111 batch (image i with seed + i) becomes parts <id>-0, <id>-1,
  // ... that any worker may take, mirrored back into one Job here.
  std::vector<std::string> parts;
  std::vector<std::vector<std::string>> commands;
  for (size_t i = 0; i < request.runs.size(); ++i) {
    const std::string part = request.runs.size() == 1 ? id : id + "-" + std::to_string(i);
    const std::string json = queue_json(part, request.model, request.runs[i]).dump();
    const std::string key = keys::job(part);
    commands.push_back({"HSET", key, "status", "queued", "model", request.model, "request", json,
                        "echo", request.echo.dump(), "origin", request.origin});
    commands.push_back({"EXPIRE", key, "86400"});
    commands.push_back({"XADD", keys::stream(request.model), "*", "id", part, "job", json});
    parts.push_back(part);
  }
  with_redis([&](RedisClient& r) { return r.transaction(commands); });
  const bool batch = request.runs.size() > 1;
  auto job = std::make_shared<Job>(id, std::move(request));
  std::lock_guard<std::mutex> lock(mutex_);
  forget_finished();
  jobs_[id] = job;
  if (batch) batches_[id] = std::move(parts);
  return job;
}

std::shared_ptr<Job> RedisJobQueue::find(const std::string& id) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = jobs_.find(id); it != jobs_.end()) return it->second;
  }
  // A job another front queued: rebuilt from its hash, then followed like our own.
  const RedisValue hash = with_redis([&](RedisClient& r) {
    return r.command({"HMGET", keys::job(id), "request", "echo", "origin"});
  });
  if (hash[0].nil()) return nullptr;
  JobRequest request;
  try {
    QueueJob q = parse_queue_job(nlohmann::json::parse(hash[0].str));
    request.model = q.model;
    request.runs.push_back(q.options);
    request.echo = hash[1].nil() ? q.json : nlohmann::json::parse(hash[1].str);
    request.origin = hash[2].str;
  } catch (const std::exception&) {
    return nullptr;  // not a job a front queued
  }
  auto job = std::make_shared<Job>(id, std::move(request));
  std::lock_guard<std::mutex> lock(mutex_);
  return jobs_.emplace(id, job).first->second;
}

void RedisJobQueue::cancel(Job& job) {
  job.cancel();  // a job still queued here finishes at once; the worker skips it
  std::vector<std::string> parts = {job.id()};
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = batches_.find(job.id()); it != batches_.end()) parts = it->second;
  }
  with_redis([&](RedisClient& r) {
    std::vector<std::vector<std::string>> commands;
    for (const auto& part : parts) commands.push_back({"HSET", keys::job(part), "cancel", "1"});
    return r.transaction(commands);
  });
}

int RedisJobQueue::position(const Job& job) const {
  // The stream does not say where an entry stands among the consumers' reads: "waiting" is 0.
  return job.snapshot().status == JobStatus::Queued ? 0 : -1;
}

std::shared_ptr<Job> RedisJobQueue::running() const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [id, job] : jobs_)
    if (job->snapshot().status == JobStatus::Running) return job;
  return nullptr;
}

std::shared_ptr<Job> RedisJobQueue::current_or_last() const {
  if (auto job = running()) return job;
  std::lock_guard<std::mutex> lock(mutex_);
  return last_;
}

size_t RedisJobQueue::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t n = 0;
  for (const auto& [id, job] : jobs_) n += job->snapshot().status == JobStatus::Queued;
  return n;
}

void RedisJobQueue::shutdown() {
  stopping_ = true;
  // The jobs stay on the queue for the workers; only this front's waiting requests are released.
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [id, job] : jobs_)
    if (!job->finished()) job->finish(JobStatus::Cancelled, "the front is shutting down");
}

void RedisJobQueue::forget_finished() {
  const auto now = Clock::now();
  for (auto it = finished_at_.begin(); it != finished_at_.end();) {
    if (now - it->second < std::chrono::hours(1) && finished_at_.size() <= 512) {
      ++it;
      continue;
    }
    jobs_.erase(it->first);
    batches_.erase(it->first);
    it = finished_at_.erase(it);
  }
}

namespace {

// The images a worker stored in a job's hash.
std::vector<std::shared_ptr<const JobImage>> stored_images(RedisClient& redis,
                                                           const std::string& key) {
  const RedisValue all = redis.command({"HGETALL", key});
  std::vector<std::shared_ptr<const JobImage>> images;
  const int count = std::stoi(field_of(all, "image_count"));
  for (int i = 0; i < count; ++i) {
    auto image = std::make_shared<JobImage>();
    const std::string png = field_of(all, "image:" + std::to_string(i));
    image->png.assign(png.begin(), png.end());
    image->parameters = field_of(all, "parameters:" + std::to_string(i));
    image->seed = std::stoull(field_of(all, "seed"));
    image->width = std::stoi(field_of(all, "width"));
    image->height = std::stoi(field_of(all, "height"));
    images.push_back(std::move(image));
  }
  return images;
}

// Copies a running job's step, total and preview from its hash fields (HMGET status, step,
// total_steps, error, preview, ...) when they changed.
void mirror_progress(Job& job, const JobSnapshot& s, const RedisValue& v) {
  const int step = v[1].str.empty() ? 0 : std::stoi(v[1].str);
  const int total = v[2].str.empty() ? 0 : std::stoi(v[2].str);
  if (step == s.step && total == s.total_steps) return;
  job.set_progress(
      step, total,
      v[4].nil() ? nullptr
                 : std::make_shared<const std::vector<uint8_t>>(v[4].str.begin(), v[4].str.end()));
}

}  // namespace

void RedisJobQueue::mirror_batch(Job& job, const std::vector<std::string>& parts,
                                 RedisClient& redis) {
  // Parts finish in any order; the Job reports them in order: the first part not done is the
  // "current image", and the Job is done (or cancelled, with the images finished before) when
  // every part has ended.
  std::vector<RedisValue> states;
  for (const auto& part : parts)
    states.push_back(redis.command(
        {"HMGET", keys::job(part), "status", "step", "total_steps", "error", "preview"}));
  size_t done = 0, ended = 0, current = parts.size();
  bool cancelled = false;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& status = states[i][0].str;
    if (states[i][0].nil()) return job.finish(JobStatus::Error, "job " + parts[i] + " expired");
    if (status == "error") return job.finish(JobStatus::Error, states[i][3].str, true);
    done += status == "done";
    cancelled = cancelled || status == "cancelled";
    ended += status == "done" || status == "cancelled";
    if (status != "done" && current == parts.size()) current = i;
  }
  const JobSnapshot s = job.snapshot();
  if (ended == parts.size()) {
    if (s.status == JobStatus::Queued) job.set_running(job.request().model);
    std::vector<std::shared_ptr<const JobImage>> images;
    for (size_t i = 0; i < parts.size(); ++i)
      if (states[i][0].str == "done")
        for (auto& image : stored_images(redis, keys::job(parts[i]))) images.push_back(image);
    job.add_result(std::move(images), {});
    return job.finish(cancelled ? JobStatus::Cancelled : JobStatus::Done);
  }
  if (done == 0 && states[current][0].str != "running") return;  // nothing started yet
  if (s.status == JobStatus::Queued) job.set_running(job.request().model);
  if (s.run != static_cast<int>(current)) job.begin_run(static_cast<int>(current));
  mirror_progress(job, s, states[current]);
}

void RedisJobQueue::mirror(Job& job, RedisClient& redis) {
  {
    std::vector<std::string> parts;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (auto it = batches_.find(job.id()); it != batches_.end()) parts = it->second;
    }
    if (!parts.empty()) return mirror_batch(job, parts, redis);
  }
  const std::string key = keys::job(job.id());
  const RedisValue v =
      redis.command({"HMGET", key, "status", "step", "total_steps", "error", "preview", "worker"});
  const std::string status = v[0].str;
  const JobSnapshot s = job.snapshot();
  if (v[0].nil()) {
    job.finish(JobStatus::Error, "job " + job.id() + " is no longer in the queue's Redis");
  } else if (status == "running") {
    if (s.status == JobStatus::Queued) job.set_running(job.request().model);
    mirror_progress(job, s, v);
  } else if (status == "done") {
    if (s.status == JobStatus::Queued) job.set_running(job.request().model);
    job.add_result(stored_images(redis, key), {});
    job.finish(JobStatus::Done);
  } else if (status == "error") {
    job.finish(JobStatus::Error, v[3].str, true);
  } else if (status == "cancelled") {
    job.finish(JobStatus::Cancelled);
  }
}

void RedisJobQueue::poll() {
  std::unique_ptr<RedisClient> redis;
  std::map<std::string, std::string> settings;
  for (int tick = 0; !stopping_; ++tick) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::vector<std::shared_ptr<Job>> open;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& [id, job] : jobs_)
        if (!job->finished()) open.push_back(job);
    }
    try {
      if (!redis) redis = std::make_unique<RedisClient>(url_, std::chrono::seconds(2));
      for (const auto& job : open) {
        mirror(*job, *redis);
        if (!job->finished()) continue;
        std::lock_guard<std::mutex> lock(mutex_);
        finished_at_[job->id()] = Clock::now();
        last_ = job;
      }
      if (tick % 5 != 0) continue;
      const RedisValue all = redis->command({"HGETALL", keys::kSettings});
      std::map<std::string, std::string> now;
      for (size_t i = 0; i + 1 < all.size(); i += 2) now[all[i].str] = all[i + 1].str;
      if (now != settings && on_settings_) on_settings_(now);
      settings = std::move(now);
    } catch (const RedisConnectionError&) {
      redis.reset();  // the jobs keep their last state until Redis is back
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
    } catch (const std::exception&) {
      // A malformed hash (someone else's key): skip this round.
    }
  }
}

std::string RedisJobQueue::metrics() const {
  return with_redis([&](RedisClient& r) {
    std::string out = "# TYPE diffuse_queue_waiting gauge\n";
    std::string pending = "# TYPE diffuse_queue_pending gauge\n";
    for (const auto& e : models_.entries()) {
      const std::string label = "model=\"" + e.name + "\"";
      RedisValue groups;
      try {
        groups = r.command({"XINFO", "GROUPS", keys::stream(e.name)});
      } catch (const RedisReplyError&) {
        continue;  // no stream yet: no worker has served this model
      }
      for (const auto& g : groups.elements) {
        if (field_of(g, "name") != keys::kGroup) continue;
        out += metric_line("diffuse_queue_waiting", label, double(integer_field(g, "lag")));
        pending += metric_line("diffuse_queue_pending", label, double(integer_field(g, "pending")));
      }
    }
    const RedisValue stats = r.command({"HGETALL", keys::kStats});
    size_t workers = 0;
    std::string cursor = "0";
    do {
      const RedisValue scan = r.command(
          {"SCAN", cursor, "MATCH", std::string(keys::kWorkerPrefix) + "*", "COUNT", "1000"});
      cursor = scan[0].str;
      workers += scan[1].size();
    } while (cursor != "0");
    return out + pending + "# TYPE diffuse_workers gauge\n" +
           metric_line("diffuse_workers", "", double(workers)) +
           "# TYPE diffuse_jobs_total counter\n" +
           metric_line("diffuse_jobs_total", "status=\"done\"", number(field_of(stats, "done"))) +
           metric_line("diffuse_jobs_total", "status=\"failed\"",
                       number(field_of(stats, "failed"))) +
           metric_line("diffuse_jobs_total", "status=\"dead\"", number(field_of(stats, "dead"))) +
           "# TYPE diffuse_denoise_steps_total counter\n" +
           metric_line("diffuse_denoise_steps_total", "", number(field_of(stats, "steps"))) +
           "# TYPE diffuse_denoise_seconds_total counter\n" +
           metric_line("diffuse_denoise_seconds_total", "",
                       number(field_of(stats, "denoise_seconds")));
  });
}

std::optional<std::string> RedisJobQueue::shared_setting(const std::string& name) const {
  const RedisValue v = with_redis([&](RedisClient& r) {
    return r.command({"HGET", keys::kSettings, name});
  });
  if (v.nil()) return std::nullopt;
  return v.str;
}

void RedisJobQueue::set_shared_setting(const std::string& name, const std::string& value) {
  with_redis([&](RedisClient& r) { return r.command({"HSET", keys::kSettings, name, value}); });
}

}  // namespace diffuse::serve
