#include "core/allocator.h"

#include <sys/resource.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace diffuse {

namespace {

class Pool {
 public:
  std::byte* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_ += bytes;
      if (live_ > peak_) peak_ = live_;
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        std::byte* p = it->second.back();
        it->second.pop_back();
        cached_ -= bytes;
        return p;
      }
      ++system_allocations_;
    }
    const size_t rounded = (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
    void* p = std::aligned_alloc(kTensorAlignment, rounded == 0 ? kTensorAlignment : rounded);
    if (!p) {
      std::lock_guard<std::mutex> lock(mu_);
      live_ -= bytes;
      throw std::bad_alloc();
    }
    return static_cast<std::byte*>(p);
  }

  void give(std::byte* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    live_ -= bytes;
    free_[bytes].push_back(p);
    cached_ += bytes;
  }

  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, blocks] : free_)
      for (std::byte* p : blocks) std::free(p);
    free_.clear();
    cached_ = 0;
  }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return {live_, peak_, cached_, system_allocations_};
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = live_;
  }

 private:
  std::mutex mu_;
  std::map<size_t, std::vector<std::byte*>> free_;
  size_t live_ = 0, peak_ = 0, cached_ = 0, system_allocations_ = 0;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: buffers may outlive static destruction order
  return *p;
}

}  // namespace

Buffer allocate_buffer(size_t bytes) {
  std::byte* p = pool().take(bytes);
  return Buffer(p, [bytes](std::byte* q) { pool().give(q, bytes); });
}

MemoryStats memory_stats() {
  return pool().stats();
}
void reset_peak_memory() {
  pool().reset_peak();
}
void release_cached_memory() {
  pool().release();
}

size_t process_peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<size_t>(ru.ru_maxrss) * 1024;
}

}  // namespace diffuse
