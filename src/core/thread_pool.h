// The one thread pool every kernel shares. Kernels split work with parallel_for; nesting is
// allowed (a nested call runs inline on the calling worker), so a kernel never oversubscribes
// cores.
#pragma once

#include <cstdint>
#include <functional>

namespace diffuse {

/// Number of threads kernels use (defaults to the hardware concurrency).
int num_threads();
/// Resizes the pool; 0 means "hardware concurrency". Call between operations, not during one.
void set_num_threads(int n);

/// Calls fn(begin, end) over [0, n) split into contiguous chunks, one or more per thread, and
/// returns when all are done. `grain` is the smallest chunk worth a thread.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

}  // namespace diffuse
