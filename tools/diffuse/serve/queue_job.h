// A job on the Redis queue: one JSON object with `model`, an optional `id` and the library's
// generation option names. The same format is a line of `diffuse batch`'s prompts file and the
// `job` field of a stream entry, so a worker validates exactly what a client wrote.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "diffuse/diffuse.hpp"

namespace diffuse::serve {

struct QueueJob {
  std::string id;
  std::string model;
  GenerateOptions options;
  nlohmann::json json;  // as enqueued: the input with `id` and `seed` filled in
};

/// Validates a job object; std::invalid_argument with a one-line message naming the key at fault
/// (unknown key, wrong type, out of range). A missing `id` becomes the hash of the canonical JSON
/// (so the same line always gets the same id) and a missing `seed` one derived from the id.
QueueJob parse_queue_job(const nlohmann::json& object);

/// The id of a job without one: 16 hex digits of the SHA-256 of its canonical JSON (sorted keys,
/// no spaces).
std::string canonical_job_id(const nlohmann::json& object);
/// A seed in [0, 2^32) derived from a job id, for jobs that give none.
uint64_t seed_from_job_id(const std::string& id);

}  // namespace diffuse::serve
