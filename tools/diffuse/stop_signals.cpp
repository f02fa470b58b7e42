#include "stop_signals.h"

#include <pthread.h>
#include <signal.h>

#include <cstdlib>
#include <mutex>
#include <thread>

namespace diffuse::cli {

namespace {

std::mutex g_mutex;
std::function<void(int)> g_on_signal;  // the live StopScope's, if any
bool g_signalled = false;              // the live scope has had its one signal

sigset_t stop_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

// The default action, from this thread: unblocking here lets raise() end the process.
[[noreturn]] void die_of(int sig) {
  signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  raise(sig);
  std::_Exit(128 + sig);  // not reached: the default action of both signals ends the process
}

void watch() {
  const sigset_t set = stop_set();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    // Called under the lock, so a StopScope's destructor waits for its callback to return and
    // the callback never outlives what it refers to.
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!g_on_signal || g_signalled) die_of(sig);
    g_signalled = true;
    g_on_signal(sig);
  }
}

}  // namespace

void install_stop_signals() {
  const sigset_t set = stop_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread(watch).detach();
}

StopScope::StopScope(std::function<void(int)> on_signal) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_on_signal = std::move(on_signal);
  g_signalled = false;
}

StopScope::~StopScope() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_on_signal = nullptr;
}

}  // namespace diffuse::cli
