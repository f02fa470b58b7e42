// Thread pools for kernels. Kernels split work with parallel_for, which runs on the calling
// thread's current pool: the one a ThreadPoolScope installed (each pipeline owns one, so two
// pipelines in one process neither share nor serialise threads), else the process's default pool.
// Nesting is allowed (a nested call runs inline on the calling worker), so a kernel never
// oversubscribes cores.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace diffuse {

class ThreadPool {
 public:
  /// `threads` counts the calling thread; 0 means the hardware concurrency.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const;
  /// Calls fn(begin, end) over [0, n) split into contiguous chunks, one or more per thread, and
  /// returns when all are done. `grain` is the smallest chunk worth a thread. Callers on other
  /// threads that share this pool take turns.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Makes `pool` the calling thread's current pool until the scope ends.
class ThreadPoolScope {
 public:
  explicit ThreadPoolScope(ThreadPool& pool);
  ~ThreadPoolScope();
  ThreadPoolScope(const ThreadPoolScope&) = delete;
  ThreadPoolScope& operator=(const ThreadPoolScope&) = delete;

 private:
  ThreadPool* previous_;
};

/// The calling thread's current pool.
ThreadPool& current_thread_pool();
/// Threads of the current pool.
int num_threads();
/// Resizes the process's default pool (used where no ThreadPoolScope is active); 0 means
/// "hardware concurrency". Call between operations, not during one.
void set_num_threads(int n);
int hardware_threads();

/// parallel_for on the current pool.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

}  // namespace diffuse
