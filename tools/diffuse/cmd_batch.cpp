// diffuse batch: enqueue a JSON-lines file of jobs on the Redis queue and collect the images into
// a folder as the workers finish them. Job ids are stable (given, or the hash of the line), so a
// rerun skips what is already on disk and does not enqueue what is already queued or done.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "commands.h"
#include "diffuse/diffuse.hpp"
#include "serve/queue_job.h"
#include "serve/queue_layout.h"
#include "serve/redis_client.h"

namespace fs = std::filesystem;

namespace diffuse::cli {

namespace {

namespace keys = serve::queue_keys;
using std::chrono::milliseconds;

struct BatchArgs {
  std::string queue, file, out_dir;
  int job_ttl_s = 7 * 86400;
  double timeout_s = 0;
};

struct BatchJob {
  serve::QueueJob job;
  std::vector<std::string> outputs;  // DIR/<id>.png, or DIR/<id>-<i>.png for several images
  int line = 0;
  bool finished = false, failed = false;
};

std::vector<BatchJob> read_jobs(const BatchArgs& a, int& bad_lines) {
  std::ifstream in(a.file);
  if (!in) throw FileError(a.file + ": cannot read the jobs file");
  std::vector<BatchJob> jobs;
  std::set<std::string> ids;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const nlohmann::json object = nlohmann::json::parse(line);
      BatchJob b{serve::parse_queue_job(object), {}, number};
      if (!ids.insert(b.job.id).second) {
        std::cerr << a.file << ":" << number << ": job " << b.job.id
                  << " appears twice; the second is skipped\n";
        continue;
      }
      const int n = b.job.options.image_count;
      for (int i = 0; i < n; ++i)
        b.outputs.push_back(
            (fs::path(a.out_dir) / (b.job.id + (n == 1 ? "" : "-" + std::to_string(i)) + ".png"))
                .string());
      jobs.push_back(std::move(b));
    } catch (const nlohmann::json::exception& e) {
      std::cerr << a.file << ":" << number << ": not a JSON object: " << e.what() << "\n";
      ++bad_lines;
    } catch (const std::invalid_argument& e) {
      std::cerr << a.file << ":" << number << ": " << e.what() << "\n";
      ++bad_lines;
    }
  }
  return jobs;
}

class QueueConnection {
 public:
  explicit QueueConnection(serve::RedisUrl url) : url_(std::move(url)) {}
  /// Runs `f` with a connected client, reconnecting with backoff while Redis is unreachable.
  template <class F>
  auto with(F&& f) {
    milliseconds backoff(250);
    for (;;) {
      try {
        if (!client_) client_ = std::make_unique<serve::RedisClient>(url_);
        return f(*client_);
      } catch (const serve::RedisConnectionError& e) {
        client_.reset();
        std::cerr << "\ndiffuse batch: " << e.what() << "; retrying in " << backoff.count() / 1000.0
                  << " s" << std::endl;
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, milliseconds(5000));
    }
  }

 private:
  serve::RedisUrl url_;
  std::unique_ptr<serve::RedisClient> client_;
};

// Queues a job unless it is already queued, running or done (a rerun, or another batch).
void enqueue(serve::RedisClient& redis, const BatchJob& b, int ttl_s) {
  const std::string key = keys::job(b.job.id);
  const std::string status = redis.command({"HGET", key, "status"}).str;
  if (status == "queued" || status == "running" || status == "done") return;
  const std::string json = b.job.json.dump();
  redis.transaction({{"DEL", key},
                     {"HSET", key, "status", "queued", "model", b.job.model, "request", json},
                     {"EXPIRE", key, std::to_string(ttl_s)},
                     {"XADD", keys::stream(b.job.model), "*", "id", b.job.id, "job", json}});
}

void write_file(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".part";
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw FileError(tmp + ": cannot write");
  }
  fs::rename(tmp, path);  // a file under its final name is always complete
}

// Looks at one unfinished job: writes its images when done, reports its error when dead.
void poll(serve::RedisClient& redis, BatchJob& b, int ttl_s) {
  const std::string key = keys::job(b.job.id);
  const serve::RedisValue state = redis.command({"HMGET", key, "status", "error"});
  const std::string status = state[0].str;
  if (status == "done") {
    const serve::RedisValue all = redis.command({"HGETALL", key});
    for (size_t i = 0; i < b.outputs.size(); ++i) {
      bool found = false;
      const std::string png = serve::field_of(all, "image:" + std::to_string(i), &found);
      if (!found)
        throw FileError("job " + b.job.id + ": the stored result has no image " +
                        std::to_string(i));
      write_file(b.outputs[i], png);
    }
    b.finished = true;
  } else if (status == "error" || status == "cancelled") {
    std::cerr << "\njob " << b.job.id << ": "
              << (status == "error" ? state[1].str : "cancelled (from a front)") << "\n";
    b.finished = b.failed = true;
  } else if (state[0].nil()) {
    enqueue(redis, b, ttl_s);  // expired or lost with a Redis that kept no data: queue again
  }
}

void show_progress(size_t done, size_t failed, size_t total, bool tty) {
  static size_t last = SIZE_MAX;
  if (!tty && done + failed == last) return;
  last = done + failed;
  constexpr size_t kWidth = 30;
  const size_t filled = total ? (done + failed) * kWidth / total : kWidth;
  std::cerr << (tty ? "\r" : "") << "[" << std::string(filled, '#')
            << std::string(kWidth - filled, ' ') << "] " << done + failed << "/" << total
            << " jobs (" << failed << " failed)" << (tty ? "" : "\n") << std::flush;
}

// A job for a model no worker serves would wait forever: such lines are errors. Before any
// worker has started there is nothing to check against, and the jobs wait for one.
void refuse_unknown_models(const BatchArgs& a, QueueConnection& queue, std::vector<BatchJob>& jobs,
                           int& bad_lines) {
  const serve::RedisValue models = queue.with([](serve::RedisClient& r) {
    return r.command({"SMEMBERS", keys::kModels});
  });
  if (models.size() == 0) {
    std::cerr << "diffuse batch: no worker has joined the queue yet; the jobs wait for one\n";
    return;
  }
  std::set<std::string> known;
  std::string list;
  for (const auto& m : models.elements) known.insert(m.str);
  for (const auto& m : known) list += (list.empty() ? "" : ", ") + m;
  std::erase_if(jobs, [&](const BatchJob& b) {
    if (known.count(b.job.model)) return false;
    std::cerr << a.file << ":" << b.line << ": model: unknown model \"" << b.job.model
              << "\" (the workers serve: " << list << ")\n";
    ++bad_lines;
    return true;
  });
}

int run_batch(const BatchArgs& a) {
  serve::RedisUrl url;
  try {
    url = serve::parse_redis_url(a.queue, "--queue");
  } catch (const std::invalid_argument& e) {
    throw ConfigError(e.what());
  }
  int bad_lines = 0;
  std::vector<BatchJob> jobs = read_jobs(a, bad_lines);
  fs::create_directories(a.out_dir);
  size_t skipped = 0;
  for (auto& b : jobs) {
    bool all = true;
    for (const auto& f : b.outputs) all = all && fs::exists(f);
    if (all) b.finished = true, ++skipped;
  }
  std::cerr << "diffuse batch: " << jobs.size() << " job(s), " << skipped << " already in "
            << a.out_dir << "\n";
  QueueConnection queue(url);
  refuse_unknown_models(a, queue, jobs, bad_lines);
  for (const auto& b : jobs)
    if (!b.finished) queue.with([&](serve::RedisClient& r) { enqueue(r, b, a.job_ttl_s); });
  const bool tty = isatty(STDERR_FILENO) != 0;
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    size_t done = 0, failed = 0;
    for (auto& b : jobs) {
      if (!b.finished) queue.with([&](serve::RedisClient& r) { poll(r, b, a.job_ttl_s); });
      done += b.finished && !b.failed;
      failed += b.failed;
    }
    show_progress(done, failed, jobs.size(), tty);
    if (done + failed == jobs.size()) break;
    if (a.timeout_s > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >
            a.timeout_s) {
      std::cerr << "\ndiffuse batch: --timeout " << a.timeout_s << " s reached with "
                << jobs.size() - done - failed << " job(s) unfinished (still queued)\n";
      return 1;
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
  std::cerr << (tty ? "\n" : "");
  size_t failed = 0;
  for (const auto& b : jobs) failed += b.failed;
  return bad_lines > 0 || failed > 0 ? 1 : 0;
}

}  // namespace

Command add_batch(CLI::App& app) {
  auto a = std::make_shared<BatchArgs>();
  CLI::App* c = app.add_subcommand(
      "batch", "Queue a JSON-lines file of jobs on Redis and collect the images into a folder");
  c->add_option("--queue", a->queue, "Redis queue, redis://HOST:PORT/DB")->required();
  c->add_option("jobs", a->file,
                "JSON lines: {\"model\": ..., \"id\": ..., \"prompt\": ..., \"steps\": ...}")
      ->required();
  c->add_option("--output,-o", a->out_dir, "folder for <id>.png (<id>-<i>.png)")->required();
  c->add_option("--timeout", a->timeout_s, "give up waiting after this many seconds (0: never)")
      ->capture_default_str();
  c->add_option("--job-ttl", a->job_ttl_s, "seconds a queued job's record is kept in Redis")
      ->capture_default_str()
      ->check(CLI::Range(60, 365 * 86400));
  return [a] { return run_batch(*a); };
}

}  // namespace diffuse::cli
