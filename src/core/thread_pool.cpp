#include "core/thread_pool.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/allocator.h"

namespace diffuse {

namespace {

thread_local bool t_in_pool = false;
thread_local ThreadPool* t_current_pool = nullptr;

}  // namespace

int hardware_threads() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

struct ThreadPool::Impl {
  explicit Impl(int n) {
    for (int i = 1; i < n; ++i) workers_.emplace_back([this] { loop(); });
  }
  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
      cv_.notify_all();
    }
    for (auto& w : workers_) w.join();
  }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs task(i) for i in [0, ntasks) using the workers and the caller; workers allocate from
  // the caller's memory pool while they run its task.
  void run(int ntasks, const std::function<void(int)>& task) {
    std::lock_guard<std::mutex> region(region_mu_);  // one parallel region of this pool at a time
    std::unique_lock<std::mutex> lock(mu_);
    task_ = &task;
    memory_ = &current_memory_pool();
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

  void loop() {
    t_in_pool = true;
    uint64_t seen = 0;
    for (;;) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return quit_ || (generation_ != seen && task_ != nullptr); });
      if (quit_) return;
      seen = generation_;
      MemoryPool* memory = memory_;
      lock.unlock();
      MemoryPoolScope scope(*memory);
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
  std::mutex region_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* task_ = nullptr;
  MemoryPool* memory_ = nullptr;
  int ntasks_ = 0, next_ = 0, pending_ = 0;
  uint64_t generation_ = 0;
  bool quit_ = false;
  std::exception_ptr error_;
};

ThreadPool::ThreadPool(int threads)
    : impl_(std::make_unique<Impl>(threads <= 0 ? hardware_threads() : threads)) {}
ThreadPool::~ThreadPool() = default;

int ThreadPool::size() const {
  return impl_->size();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                              int64_t grain) {
  if (n <= 0) return;
  const int threads = t_in_pool ? 1 : size();
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_chunks = std::max<int64_t>(1, n / grain);
  const int chunks = static_cast<int>(std::min<int64_t>(threads, max_chunks));
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  impl_->run(chunks, [&](int c) {
    const int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
    if (b < e) fn(b, e);
  });
}

namespace {

std::mutex g_default_mu;
std::unique_ptr<ThreadPool>& default_pool_slot() {
  static auto* slot = new std::unique_ptr<ThreadPool>(std::make_unique<ThreadPool>(0));
  return *slot;
}

}  // namespace

ThreadPoolScope::ThreadPoolScope(ThreadPool& pool) : previous_(t_current_pool) {
  t_current_pool = &pool;
}
ThreadPoolScope::~ThreadPoolScope() {
  t_current_pool = previous_;
}

ThreadPool& current_thread_pool() {
  if (t_current_pool) return *t_current_pool;
  std::lock_guard<std::mutex> lock(g_default_mu);
  return *default_pool_slot();
}

int num_threads() {
  return current_thread_pool().size();
}

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lock(g_default_mu);
  default_pool_slot() = std::make_unique<ThreadPool>(n);
}

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
  current_thread_pool().parallel_for(n, fn, grain);
}

}  // namespace diffuse
