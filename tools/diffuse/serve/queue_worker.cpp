#include "serve/queue_worker.h"

#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <thread>

#include "serve/queue_job.h"
#include "serve/queue_layout.h"

namespace diffuse::serve {

namespace keys = queue_keys;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct QueueWorker::Entry {
  std::string stream, model, entry_id, job_id, raw;
  int64_t deliveries = 1;
  bool cancelled = false;  // a front asked (DELETE /api/v1/jobs/{id}, /sdapi/v1/interrupt)
  QueueJob job;
  Clock::time_point last_touch, last_publish;
};

namespace {

std::string ms_since(Clock::time_point t) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(Clock::now() - t).count());
}

// A1111 writes "Model hash: <short hash>, Model: <name>" into its infotext.
std::string with_model_hash(std::string text, const std::string& hash) {
  const size_t at = text.rfind(", Model: ");
  if (at != std::string::npos) text.insert(at, ", Model hash: " + hash);
  return text;
}

// A stream entry [id, [field, value, ...]] read from `stream`.
QueueWorker::Entry* parse_entry(const RedisValue& v, const std::string& stream,
                                QueueWorker::Entry& out) {
  if (!v.is_array() || v.size() < 2 || !v[1].is_array()) return nullptr;  // deleted meanwhile
  out.stream = stream;
  out.model = stream.substr(std::string(keys::kStreamPrefix).size());
  out.entry_id = v[0].str;
  out.job_id = field_of(v[1], "id");
  out.raw = field_of(v[1], "job");
  return &out;
}

}  // namespace

QueueWorker::QueueWorker(WorkerConfig config, ModelRegistry& models, const std::atomic<bool>& stop,
                         std::ostream& log)
    : config_(std::move(config)), models_(models), stop_(stop), log_(log) {}

QueueWorker::~QueueWorker() = default;

void QueueWorker::sleep_unless_stopped(milliseconds duration) {
  const auto until = Clock::now() + duration;
  while (!stop_ && Clock::now() < until) std::this_thread::sleep_for(milliseconds(50));
}

void QueueWorker::connect_with_backoff() {
  milliseconds backoff(250);
  while (!stop_) {
    try {
      redis_ = std::make_unique<RedisClient>(config_.url);
      log_ << "diffuse worker " << config_.name << ": connected to " << config_.url.text()
           << std::endl;
      return;
    } catch (const RedisConnectionError& e) {
      log_ << "diffuse worker " << config_.name << ": " << e.what() << "; retrying in "
           << backoff.count() / 1000.0 << " s" << std::endl;
    }
    sleep_unless_stopped(backoff);
    backoff = std::min(backoff * 2, milliseconds(5000));
  }
}

void QueueWorker::ensure_groups() {
  for (const auto& e : models_.entries()) {
    try {
      redis_->command({"XGROUP", "CREATE", keys::stream(e.name), keys::kGroup, "0", "MKSTREAM"});
    } catch (const RedisReplyError& err) {
      if (std::string(err.what()).find("BUSYGROUP") == std::string::npos) throw;
    }
    // The models some worker serves: `diffuse batch` refuses a job for any other.
    redis_->command({"SADD", keys::kModels, e.name});
  }
}

void QueueWorker::heartbeat(bool force) {
  if (!redis_ || (!force && Clock::now() - last_heartbeat_ < std::chrono::seconds(2))) return;
  last_heartbeat_ = Clock::now();
  nlohmann::json loaded = nlohmann::json::array();
  for (const auto& e : models_.entries())
    if (models_.loaded_info(e.name)) loaded.push_back(e.name);
  const nlohmann::json beat = {{"name", config_.name},  {"pid", getpid()},
                               {"loaded", loaded},      {"job", current_job_},
                               {"step", current_step_}, {"time", std::time(nullptr)}};
  redis_->command({"SET", keys::worker(config_.name), beat.dump(), "EX", "15"});
}

// Model affinity: the streams of loaded models first, so a worker rarely switches models.
std::vector<std::string> QueueWorker::streams_by_preference() const {
  std::vector<std::string> loaded, others;
  for (const auto& e : models_.entries())
    (models_.loaded_info(e.name) ? loaded : others).push_back(keys::stream(e.name));
  loaded.insert(loaded.end(), others.begin(), others.end());
  return loaded;
}

bool QueueWorker::reclaim_one() {
  const auto every = milliseconds(std::max(100, config_.claim_idle_ms / 4));
  if (Clock::now() - last_reclaim_ < every) return false;
  last_reclaim_ = Clock::now();
  for (const auto& stream : streams_by_preference()) {
    const RedisValue r =
        redis_->command({"XAUTOCLAIM", stream, keys::kGroup, config_.name,
                         std::to_string(config_.claim_idle_ms), "0-0", "COUNT", "1"});
    if (!r.is_array() || r.size() < 2) continue;
    for (const auto& v : r[1].elements) {
      Entry entry;
      if (!parse_entry(v, stream, entry)) continue;
      const RedisValue p =
          redis_->command({"XPENDING", stream, keys::kGroup, entry.entry_id, entry.entry_id, "1"});
      if (p.size() == 1 && p[0].size() == 4) entry.deliveries = p[0][3].integer;
      log_ << "diffuse worker " << config_.name << ": reclaimed job " << entry.job_id
           << " (delivery " << entry.deliveries << ")" << std::endl;
      handle(entry);
      last_reclaim_ = {};  // look again at once: more may be waiting
      return true;
    }
  }
  return false;
}

bool QueueWorker::read_some() {
  const std::vector<std::string> streams = streams_by_preference();
  // A backlog is served in preference order; only an idle worker blocks on every stream.
  for (const auto& stream : streams) {
    const RedisValue r = redis_->command(
        {"XREADGROUP", "GROUP", keys::kGroup, config_.name, "COUNT", "1", "STREAMS", stream, ">"});
    if (r.is_array() && r.size() == 1 && r[0].size() == 2 && r[0][1].size() > 0) {
      Entry entry;
      if (parse_entry(r[0][1][0], stream, entry)) handle(entry);
      return true;
    }
  }
  std::vector<std::string> args = {
      "XREADGROUP", "GROUP", keys::kGroup, config_.name,
      "COUNT",      "1",     "BLOCK",      std::to_string(config_.block_ms),
      "STREAMS"};
  args.insert(args.end(), streams.begin(), streams.end());
  for (size_t i = 0; i < streams.size(); ++i) args.push_back(">");
  const RedisValue r = redis_->command(args);
  bool any = false;
  for (const auto& per_stream : r.elements) {
    if (per_stream.size() != 2) continue;
    for (const auto& v : per_stream[1].elements) {
      Entry entry;
      if (parse_entry(v, per_stream[0].str, entry)) handle(entry);
      any = true;
    }
  }
  return any;
}

void QueueWorker::handle(Entry& entry) {
  if (entry.deliveries > config_.max_attempts) {
    std::string last_error;
    if (!entry.job_id.empty())
      last_error = redis_->command({"HGET", keys::job(entry.job_id), "last_error"}).str;
    dead_letter(entry,
                "gave up after " + std::to_string(entry.deliveries - 1) +
                    " attempts (--max-attempts " + std::to_string(config_.max_attempts) + "): " +
                    (last_error.empty() ? "the workers running it died or stalled" : last_error));
    return;
  }
  if (entry.raw.empty()) return dead_letter(entry, "the stream entry has no `job` field");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(entry.raw);
  } catch (const nlohmann::json::exception& e) {
    return dead_letter(entry, std::string("job is not valid JSON: ") + e.what());
  }
  try {
    entry.job = parse_queue_job(json);
  } catch (const std::invalid_argument& e) {
    return dead_letter(entry, e.what());
  }
  entry.job_id = entry.job.id;
  if (!models_.find(entry.job.model))
    return dead_letter(entry, "model: unknown model \"" + entry.job.model + "\"");
  if (entry.job.model != entry.model)
    return dead_letter(
        entry, "model \"" + entry.job.model + "\" does not match the stream " + entry.stream);
  run_job(entry);
}

void QueueWorker::publish_progress(Entry& entry, int step, int total,
                                   const std::optional<Image>& preview) {
  current_step_ = step;
  const auto now = Clock::now();
  if (!redis_ || (step < total && now - entry.last_publish < milliseconds(250))) return;
  entry.last_publish = now;
  try {
    std::vector<std::string> hset = {"HSET",        keys::job(entry.job_id),
                                     "step",        std::to_string(step),
                                     "total_steps", std::to_string(total)};
    if (preview) {
      const std::vector<uint8_t> png = encode_png(*preview);
      hset.insert(hset.end(), {"preview", std::string(png.begin(), png.end())});
    }
    redis_->command(hset);
    entry.cancelled = redis_->command({"HGET", keys::job(entry.job_id), "cancel"}).str == "1";
    // XAUTOCLAIM goes by the time since delivery: touch the entry so a long job is not taken
    // from a live worker.
    if (now - entry.last_touch > milliseconds(config_.claim_idle_ms / 3)) {
      entry.last_touch = now;
      redis_->command(
          {"XCLAIM", entry.stream, keys::kGroup, config_.name, "0", entry.entry_id, "JUSTID"});
    }
    heartbeat(false);
  } catch (const RedisConnectionError& e) {
    log_ << "diffuse worker " << config_.name << ": " << e.what()
         << " (generation goes on; the result is stored once Redis is back)" << std::endl;
    redis_.reset();
  }
}

void QueueWorker::run_job(Entry& entry) {
  current_job_ = entry.job_id;
  const auto started = Clock::now();
  entry.last_touch = started;
  const std::string key = keys::job(entry.job_id);
  must({{"HSET", key, "status", "running", "worker", config_.name, "model", entry.model, "attempt",
         std::to_string(entry.deliveries), "step", "0", "total_steps", "0"},
        {"EXPIRE", key, std::to_string(config_.result_ttl_s)}});
  if (must_read_cancel(entry)) return finish_cancelled(entry);
  GenerateOptions options = entry.job.options;
  options.preview = true;
  std::string failure;
  try {
    std::shared_ptr<Pipeline> pipeline = models_.acquire(entry.model);
    GenerationResult r = pipeline->generate(options, [&](const Progress& p) {
      if (stop_ || entry.cancelled) return false;
      publish_progress(entry, p.step, p.total_steps, p.preview);
      return true;
    });
    const std::string hash = models_.short_hash(entry.model);
    std::vector<std::pair<std::string, std::string>> fields = {
        {"status", "done"},
        {"seed", std::to_string(r.seed)},
        {"image_count", std::to_string(r.images.size())},
        {"width", std::to_string(r.options.width)},
        {"height", std::to_string(r.options.height)},
        {"step", std::to_string(r.options.steps)},
        {"denoise_s", std::to_string(r.times.denoise_s)},
        {"elapsed_ms", ms_since(started)},
        {"warnings", nlohmann::json(r.warnings).dump()},
        {"error", ""}};
    for (size_t i = 0; i < r.images.size(); ++i) {
      const std::string parameters = with_model_hash(r.parameters_text(i), hash);
      const std::vector<uint8_t> png = encode_png(r.images[i], parameters);
      fields.emplace_back("image:" + std::to_string(i), std::string(png.begin(), png.end()));
      fields.emplace_back("parameters:" + std::to_string(i), parameters);
    }
    fields.emplace_back("steps_run", std::to_string(r.options.steps));
    store_result(entry, fields);
  } catch (const Cancelled&) {
    if (entry.cancelled)
      finish_cancelled(entry);
    else
      hand_back(entry);
  } catch (const ConfigError& e) {
    dead_letter(entry, e.what());  // the job's parameters: another attempt would fail the same
  } catch (const std::bad_alloc&) {
    failure = "out of memory";
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (!failure.empty()) {
    // Left pending: reclaimed after --claim-idle-ms and retried, up to --max-attempts.
    log_ << "diffuse worker " << config_.name << ": job " << entry.job_id << " failed (attempt "
         << entry.deliveries << "): " << failure << std::endl;
    must({{"HSET", key, "status", "queued", "last_error", failure},
          {"HINCRBY", keys::kStats, "failed", "1"}});
  }
  current_job_.clear();
  current_step_ = 0;
}

void QueueWorker::store_result(Entry& entry,
                               const std::vector<std::pair<std::string, std::string>>& fields) {
  const std::string key = keys::job(entry.job_id);
  std::vector<std::string> hset = {"HSET", key};
  for (const auto& [k, v] : fields) hset.insert(hset.end(), {k, v});
  std::string denoise_s, steps_run;
  for (const auto& [k, v] : fields) {
    if (k == "denoise_s") denoise_s = v;
    if (k == "steps_run") steps_run = v;
  }
  // Stored, then acknowledged, in one transaction: an acknowledged job always has its result.
  if (must({hset,
            {"HDEL", key, "preview"},
            {"EXPIRE", key, std::to_string(config_.result_ttl_s)},
            {"HINCRBY", keys::kStats, "done", "1"},
            {"HINCRBY", keys::kStats, "steps", steps_run},
            {"HINCRBYFLOAT", keys::kStats, "denoise_seconds", denoise_s},
            {"XACK", entry.stream, keys::kGroup, entry.entry_id}}))
    log_ << "diffuse worker " << config_.name << ": job " << entry.job_id << " done" << std::endl;
}

void QueueWorker::dead_letter(Entry& entry, const std::string& error) {
  log_ << "diffuse worker " << config_.name << ": job "
       << (entry.job_id.empty() ? entry.entry_id : entry.job_id) << " -> " << keys::kDead << ": "
       << error << std::endl;
  std::vector<std::vector<std::string>> commands = {
      {"XADD",    keys::kDead,    "MAXLEN",     "~",          "100000",
       "*",       "id",           entry.job_id, "stream",     entry.stream,
       "entry",   entry.entry_id, "error",      error,        "job",
       entry.raw, "worker",       config_.name, "deliveries", std::to_string(entry.deliveries)},
      {"HINCRBY", keys::kStats, "dead", "1"},
      {"XACK", entry.stream, keys::kGroup, entry.entry_id}};
  if (!entry.job_id.empty()) {
    const std::string key = keys::job(entry.job_id);
    commands.push_back({"HSET", key, "status", "error", "error", error});
    commands.push_back({"EXPIRE", key, std::to_string(config_.result_ttl_s)});
  }
  must(commands);
}

bool QueueWorker::must_read_cancel(Entry& entry) {
  try {
    if (redis_)
      entry.cancelled = redis_->command({"HGET", keys::job(entry.job_id), "cancel"}).str == "1";
  } catch (const RedisConnectionError&) {
    redis_.reset();
  }
  return entry.cancelled;
}

void QueueWorker::finish_cancelled(Entry& entry) {
  log_ << "diffuse worker " << config_.name << ": job " << entry.job_id << " cancelled"
       << std::endl;
  const std::string key = keys::job(entry.job_id);
  must({{"HSET", key, "status", "cancelled"},
        {"EXPIRE", key, std::to_string(config_.result_ttl_s)},
        {"XACK", entry.stream, keys::kGroup, entry.entry_id}});
  current_job_.clear();
}

// SIGTERM mid-job: the job goes back on its stream at once (not after --claim-idle-ms), with
// the same id, so whoever runs it writes the same result.
void QueueWorker::hand_back(Entry& entry) {
  log_ << "diffuse worker " << config_.name << ": stopping; job " << entry.job_id
       << " handed back to the queue" << std::endl;
  must({{"XADD", entry.stream, "*", "id", entry.job_id, "job", entry.raw},
        {"XACK", entry.stream, keys::kGroup, entry.entry_id},
        {"HSET", keys::job(entry.job_id), "status", "queued", "step", "0"}});
}

bool QueueWorker::must(const std::vector<std::vector<std::string>>& transaction) {
  milliseconds backoff(250);
  for (;;) {
    try {
      if (!redis_) redis_ = std::make_unique<RedisClient>(config_.url);
      redis_->transaction(transaction);
      return true;
    } catch (const RedisConnectionError& e) {
      redis_.reset();
      if (stop_) return false;  // left pending: another worker reclaims it
      log_ << "diffuse worker " << config_.name << ": " << e.what() << "; retrying in "
           << backoff.count() / 1000.0 << " s" << std::endl;
    } catch (const RedisReplyError& e) {
      log_ << "diffuse worker " << config_.name << ": " << e.what() << std::endl;
      return false;
    }
    sleep_unless_stopped(backoff);
    backoff = std::min(backoff * 2, milliseconds(5000));
  }
}

void QueueWorker::run() {
  while (!stop_) {
    try {
      if (!redis_) {
        connect_with_backoff();
        if (!redis_) break;
        ensure_groups();
      }
      heartbeat(false);
      if (reclaim_one()) continue;
      read_some();
    } catch (const RedisConnectionError& e) {
      log_ << "diffuse worker " << config_.name << ": " << e.what() << std::endl;
      redis_.reset();
    } catch (const RedisReplyError& e) {
      // NOGROUP after Redis lost its data, for one: reconnect, which recreates the groups.
      log_ << "diffuse worker " << config_.name << ": " << e.what() << std::endl;
      redis_.reset();
      sleep_unless_stopped(milliseconds(500));
    }
  }
  try {
    if (redis_) redis_->command({"DEL", keys::worker(config_.name)});
  } catch (const std::exception&) {
    // Leaving anyway; the heartbeat key expires on its own.
  }
}

}  // namespace diffuse::serve
