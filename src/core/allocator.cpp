#include "core/allocator.h"

#include <sys/mman.h>
#include <sys/resource.h>

#include <cstdlib>
#include <new>

namespace diffuse {

namespace {

thread_local MemoryPool* t_current_pool = nullptr;

MemoryPool& default_pool() {
  // Never destroyed: buffers may outlive static destruction order.
  static auto* p = new std::shared_ptr<MemoryPool>(MemoryPool::create());
  return **p;
}

// LargeBlocks::Mapped blocks from this size are mapped pages of their own. From malloc, a freed
// block of a few MB may stay in the heap (glibc raises its mmap threshold up to 32 MB as large
// blocks come and go): a run of differently sized blocks (a converter reading tensor after
// tensor) grew the process by hundreds of MB that way.
constexpr size_t kMappedBlockBytes = size_t{1} << 20;

size_t rounded_size(size_t bytes) {
  return (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
}

void free_block(MemoryPool::LargeBlocks large, std::byte* p, size_t bytes) {
  const size_t rounded = rounded_size(bytes);
  if (large == MemoryPool::LargeBlocks::Mapped && rounded >= kMappedBlockBytes)
    munmap(p, rounded);
  else
    std::free(p);
}

}  // namespace

std::byte* MemoryPool::system_allocate(size_t bytes) const {
  const size_t rounded = rounded_size(bytes);
  if (large_ == LargeBlocks::Mapped && rounded >= kMappedBlockBytes) {
    void* p = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
  }
  return static_cast<std::byte*>(
      std::aligned_alloc(kTensorAlignment, rounded == 0 ? kTensorAlignment : rounded));
}

void MemoryPool::system_free(std::byte* p, size_t bytes) const {
  free_block(large_, p, bytes);
}

MemoryPool::~MemoryPool() {
  for (auto& [size, blocks] : free_)
    for (std::byte* p : blocks) system_free(p, size);
}

std::byte* MemoryPool::take(size_t bytes) {
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
  std::byte* p = system_allocate(bytes);
  if (!p) {
    std::lock_guard<std::mutex> lock(mu_);
    live_ -= bytes;
    throw std::bad_alloc();
  }
  return p;
}

void MemoryPool::give(std::byte* p, size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    live_ -= bytes;
    if (caching_) {
      free_[bytes].push_back(p);
      cached_ += bytes;
      return;
    }
  }
  system_free(p, bytes);
}

Buffer MemoryPool::allocate(size_t bytes) {
  std::byte* p = take(bytes);
  return Buffer(p, [self = shared_from_this(), bytes](std::byte* q) { self->give(q, bytes); });
}

Buffer MemoryPool::scratch(size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (scratch_ && scratch_bytes_ >= bytes && scratch_.use_count() == 1) return scratch_;
  std::byte* p = system_allocate(bytes);
  if (!p) throw std::bad_alloc();
  scratch_ = Buffer(p, [large = large_, bytes](std::byte* q) { free_block(large, q, bytes); });
  scratch_bytes_ = bytes;
  return scratch_;
}

void MemoryPool::release_cached() {
  std::lock_guard<std::mutex> lock(mu_);
  if (scratch_.use_count() == 1) {
    scratch_.reset();
    scratch_bytes_ = 0;
  }
  for (auto& [size, blocks] : free_)
    for (std::byte* p : blocks) system_free(p, size);
  free_.clear();
  cached_ = 0;
}

MemoryStats MemoryPool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {live_, peak_, cached_, system_allocations_};
}

void MemoryPool::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  peak_ = live_;
}

MemoryPoolScope::MemoryPoolScope(MemoryPool& pool) : previous_(t_current_pool) {
  t_current_pool = &pool;
}
MemoryPoolScope::~MemoryPoolScope() {
  t_current_pool = previous_;
}

MemoryPool& current_memory_pool() {
  return t_current_pool ? *t_current_pool : default_pool();
}

Buffer allocate_buffer(size_t bytes) {
  return current_memory_pool().allocate(bytes);
}

MemoryStats memory_stats() {
  return current_memory_pool().stats();
}
void reset_peak_memory() {
  current_memory_pool().reset_peak();
}
void release_cached_memory() {
  current_memory_pool().release_cached();
}

size_t process_peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<size_t>(ru.ru_maxrss) * 1024;
}

}  // namespace diffuse
