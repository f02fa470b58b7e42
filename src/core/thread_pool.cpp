#include "core/thread_pool.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace diffuse {

namespace {

thread_local bool t_in_pool = false;

class ThreadPool {
 public:
  explicit ThreadPool(int n) { start(n); }
  ~ThreadPool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int n) {
    stop();
    start(n);
  }

  // Runs task(i) for i in [0, ntasks) using the workers and the caller.
  void run(int ntasks, const std::function<void(int)>& task) {
    std::unique_lock<std::mutex> lock(mu_);
    task_ = &task;
    ntasks_ = ntasks;
    next_ = 0;
    pending_ = ntasks;
    error_ = nullptr;
    ++generation_;
    cv_.notify_all();
    lock.unlock();
    work();
    lock.lock();
    done_cv_.wait(lock, [&] { return pending_ == 0; });
    task_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void start(int n) {
    quit_ = false;
    for (int i = 1; i < n; ++i) workers_.emplace_back([this] { loop(); });
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
      cv_.notify_all();
    }
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  void loop() {
    t_in_pool = true;
    uint64_t seen = 0;
    for (;;) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return quit_ || (generation_ != seen && task_ != nullptr); });
      if (quit_) return;
      seen = generation_;
      lock.unlock();
      work();
    }
  }

  void work() {
    const bool was = t_in_pool;
    t_in_pool = true;
    for (;;) {
      int i;
      const std::function<void(int)>* task;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (task_ == nullptr || next_ >= ntasks_) break;
        i = next_++;
        task = task_;
      }
      try {
        (*task)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_cv_.notify_all();
    }
    t_in_pool = was;
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* task_ = nullptr;
  int ntasks_ = 0, next_ = 0, pending_ = 0;
  uint64_t generation_ = 0;
  bool quit_ = false;
  std::exception_ptr error_;
};

int hardware_threads() {
  return std::max(1u, std::thread::hardware_concurrency());
}

std::mutex g_pool_mu;
ThreadPool& pool() {
  static ThreadPool* p = new ThreadPool(hardware_threads());
  return *p;
}

}  // namespace

int num_threads() {
  return pool().size();
}

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lock(g_pool_mu);
  pool().resize(n <= 0 ? hardware_threads() : n);
}

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
  if (n <= 0) return;
  const int threads = t_in_pool ? 1 : num_threads();
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_chunks = std::max<int64_t>(1, n / grain);
  const int chunks = static_cast<int>(std::min<int64_t>(threads, max_chunks));
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> lock(g_pool_mu);  // one parallel region at a time
  pool().run(chunks, [&](int c) {
    const int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
    if (b < e) fn(b, e);
  });
}

}  // namespace diffuse
