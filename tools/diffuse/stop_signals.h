// SIGINT and SIGTERM for every command, taken by one thread of their own.
//
// Why not a plain handler: a handler runs on the stack of whichever thread the signal interrupts,
// and oneDNN's JIT GEMM kernels point the stack pointer into a heap block while they run. The
// signal frame (a few KB with AVX-512 state) was then written below that block, over the heap's
// own bookkeeping, and the process crashed with "corrupted size vs. prev_size" a moment after a
// Ctrl-C or a SIGTERM mid-step. With both signals blocked in every thread, no thread is ever
// interrupted; one watcher thread takes them with sigwait and calls ordinary code.
#pragma once

#include <functional>

namespace diffuse::cli {

/// Blocks SIGINT and SIGTERM in the calling thread and starts the watcher. Call it first in
/// main(), before any other thread exists, so every thread inherits the blocked mask. Without a
/// StopScope a signal ends the process as the default action would (exit status 128 + signal).
void install_stop_signals();

/// While one lives, the first SIGINT/SIGTERM calls on_signal(signal) on the watcher thread (it
/// should only set a flag or ask a server to stop); a second one ends the process at once.
class StopScope {
 public:
  explicit StopScope(std::function<void(int)> on_signal);
  ~StopScope();
  StopScope(const StopScope&) = delete;
  StopScope& operator=(const StopScope&) = delete;
};

}  // namespace diffuse::cli
