// Aligned activation memory with recycling pools.
//
// The denoising loop creates the same activation sizes at every step; a pool hands a released
// block back to the next request of the same size, so after the first step no op touches the system
// heap for activation memory. Blocks return to their pool when the last tensor viewing them goes
// away, which is what releases each activation right after its last consumer.
//
// Allocation goes to the calling thread's current pool: the one a MemoryPoolScope installed (each
// pipeline owns one, so its statistics are its own), else the process's default pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace diffuse {

constexpr size_t kTensorAlignment = 64;

using Buffer = std::shared_ptr<std::byte>;

struct MemoryStats {
  size_t live_bytes = 0;          // held by tensors now
  size_t peak_bytes = 0;          // max live_bytes since the last reset_peak()
  size_t cached_bytes = 0;        // released blocks kept for reuse
  size_t system_allocations = 0;  // calls that reached the system allocator
};

class MemoryPool : public std::enable_shared_from_this<MemoryPool> {
 public:
  /// How blocks of 1 MiB and more come from the system.
  enum class LargeBlocks : uint8_t {
    /// Pages mapped for the block and unmapped when it is freed: released memory always leaves
    /// the process (release_cached() really shrinks it; a converter's tensors of ever new sizes
    /// do not pile up in the heap), at the price of a page fault per page on each new block.
    Mapped,
    /// From malloc: glibc reuses freed heap pages without faulting them in again, which a pool
    /// without caching (--low-memory) needs to stay fast (15% of a step, measured), at the price
    /// of some freed memory staying in the process.
    Heap,
  };
  /// `caching` false: released blocks go straight back to the system allocator (least memory;
  /// every allocation reaches it).
  static std::shared_ptr<MemoryPool> create(bool caching = true,
                                            LargeBlocks large = LargeBlocks::Mapped) {
    return std::shared_ptr<MemoryPool>(new MemoryPool(caching, large));
  }
  ~MemoryPool();
  MemoryPool(const MemoryPool&) = delete;
  MemoryPool& operator=(const MemoryPool&) = delete;

  /// `bytes` of 64-byte aligned, uninitialised memory; the block comes back here when the last
  /// Buffer copy goes away (the pool lives at least as long as its blocks).
  Buffer allocate(size_t bytes);
  MemoryStats stats() const;
  void reset_peak();
  /// One reusable block of at least `bytes` for a transient copy an op makes and drops before it
  /// returns (a widened weight matrix): grown when a larger one is asked for, replaced when the
  /// last one is still in use, given back by release_cached(). Not counted in stats().
  Buffer scratch(size_t bytes);
  /// Returns cached blocks and an idle scratch block to the system (e.g. between stages or after a
  /// model unload).
  void release_cached();

 private:
  MemoryPool(bool caching, LargeBlocks large) : caching_(caching), large_(large) {}
  std::byte* take(size_t bytes);
  void give(std::byte* p, size_t bytes);
  std::byte* system_allocate(size_t bytes) const;
  void system_free(std::byte* p, size_t bytes) const;

  mutable std::mutex mu_;
  std::map<size_t, std::vector<std::byte*>> free_;
  size_t live_ = 0, peak_ = 0, cached_ = 0, system_allocations_ = 0;
  Buffer scratch_;  // plain heap block (its deleter must not hold the pool)
  size_t scratch_bytes_ = 0;
  const bool caching_;
  const LargeBlocks large_;
};

/// Makes `pool` the calling thread's current pool until the scope ends.
class MemoryPoolScope {
 public:
  explicit MemoryPoolScope(MemoryPool& pool);
  ~MemoryPoolScope();
  MemoryPoolScope(const MemoryPoolScope&) = delete;
  MemoryPoolScope& operator=(const MemoryPoolScope&) = delete;

 private:
  MemoryPool* previous_;
};

MemoryPool& current_memory_pool();

/// Allocates `bytes` (64-byte aligned, uninitialised) from the current pool.
Buffer allocate_buffer(size_t bytes);

/// Statistics of the current pool.
MemoryStats memory_stats();
void reset_peak_memory();
void release_cached_memory();

/// Peak resident set size of the process in bytes (from the OS), for reports.
size_t process_peak_rss_bytes();

}  // namespace diffuse
