// What the Hugging Face Hub code is given: everything it would otherwise read from the environment
// (endpoint, token, cache folder, offline mode) arrives here, filled in by the CLI. The hub library
// never reads the environment and never prints; progress goes through a callback.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "diffuse/error.hpp"

namespace diffuse::hub {

/// A download's progress: `done` of `total` bytes of `file` (total 0 when unknown).
struct TransferProgress {
  std::string file;
  uint64_t done = 0, total = 0;
  bool finished = false;
};

struct HubOptions {
  std::string endpoint = "https://huggingface.co";  // HF_ENDPOINT
  std::string token;                                // HF_TOKEN or $HF_HOME/token; empty: anonymous
  std::string cache_dir;  // the hub cache ($HF_HUB_CACHE, default $HF_HOME/hub)
  bool offline = false;   // HF_HUB_OFFLINE: resolve from the cache only
  long connect_timeout_s = 10;
  std::function<void(const TransferProgress&)> progress;  // optional
};

/// Any failure talking to the Hub or using its cache; the message says what failed and what to do.
class HubError : public Error {
 public:
  using Error::Error;
};

}  // namespace diffuse::hub
