// Aligned activation memory with a recycling pool.
//
// The denoising loop creates the same activation sizes at every step; the pool hands a released
// block back to the next request of the same size, so after the first step no op touches the system
// heap for activation memory. Blocks return to the pool when the last tensor viewing them goes
// away, which is what releases each activation right after its last consumer.
#pragma once

#include <cstddef>
#include <memory>

namespace diffuse {

constexpr size_t kTensorAlignment = 64;

using Buffer = std::shared_ptr<std::byte>;

/// Allocates `bytes` (64-byte aligned, uninitialised) from the global pool.
Buffer allocate_buffer(size_t bytes);

struct MemoryStats {
  size_t live_bytes = 0;          // held by tensors now
  size_t peak_bytes = 0;          // max live_bytes since the last reset_peak()
  size_t cached_bytes = 0;        // released blocks kept for reuse
  size_t system_allocations = 0;  // calls that reached the system allocator
};

MemoryStats memory_stats();
void reset_peak_memory();
/// Returns cached blocks to the system (e.g. between generations or after a model unload).
void release_cached_memory();

/// Peak resident set size of the process in bytes (from the OS), for reports.
size_t process_peak_rss_bytes();

}  // namespace diffuse
