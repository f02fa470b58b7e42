// Where the Redis queue keeps things (docs/SCALE-OUT.md describes the layout): one stream of jobs
// per model read by the consumer group `diffuse-workers`, one hash per job (status, progress,
// result images), the dead-letter stream, worker heartbeats, counters and the fronts' settings.
#pragma once

#include <string>

namespace diffuse::serve::queue_keys {

inline constexpr const char* kGroup = "diffuse-workers";
inline constexpr const char* kDead = "diffuse:dead";
inline constexpr const char* kStats = "diffuse:stats";        // hash of counters
inline constexpr const char* kSettings = "diffuse:settings";  // hash: the fronts' A1111 options
inline constexpr const char* kModels = "diffuse:models";      // set: models workers serve
inline constexpr const char* kStreamPrefix = "diffuse:jobs:";
inline constexpr const char* kWorkerPrefix = "diffuse:worker:";

inline std::string stream(const std::string& model) {
  return kStreamPrefix + model;
}
inline std::string job(const std::string& id) {
  return "diffuse:job:" + id;
}
inline std::string worker(const std::string& name) {
  return kWorkerPrefix + name;
}

}  // namespace diffuse::serve::queue_keys
