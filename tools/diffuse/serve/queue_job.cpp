#include "serve/queue_job.h"

#include <openssl/evp.h>

#include <stdexcept>

#include "serve/generation_request.h"
#include "serve/http_error.h"
#include "serve/json_fields.h"

namespace diffuse::serve {

namespace {

std::string sha256_hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

// Ids name files (DIR/<id>.png) and Redis keys: a safe alphabet, no leading dot.
void check_id(const std::string& id) {
  if (id.empty() || id.size() > 128 || id[0] == '.')
    throw std::invalid_argument("id must be 1 to 128 characters and not start with '.'");
  for (char c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      throw std::invalid_argument("id \"" + id + "\": use only letters, digits, '-', '_' and '.'");
}

GenerateOptions read_options(JsonFields& f) {
  GenerateOptions o;
  o.prompt = f.string("prompt", "");
  // Absent: no negative prompt (SDXL's force_zeros_for_empty_prompt applies); "" encodes "".
  if (auto negative = f.optional_string("negative_prompt")) o.negative_prompt = *negative;
  o.steps = static_cast<int>(f.integer("steps", o.steps, 1, 100000));
  o.guidance_scale = static_cast<float>(f.number("guidance_scale", o.guidance_scale, -100, 100));
  o.scheduler = f.string("scheduler", "");
  if (f.has("karras_sigmas")) o.karras_sigmas = f.boolean("karras_sigmas", false);
  o.timestep_spacing = f.string("timestep_spacing", "");
  if (auto eta = f.optional_number("eta", 0, 10)) o.eta = *eta;
  o.width = static_cast<int>(f.integer("width", 0, 0, 1 << 16));
  o.height = static_cast<int>(f.integer("height", 0, 0, 1 << 16));
  o.image_count = static_cast<int>(f.integer("image_count", 1, 1, 1 << 16));
  o.rng = f.string("rng", "torch");
  o.clip_skip = static_cast<int>(f.integer("clip_skip", 0, 0, 11));
  // Image-to-image: the init image travels in the job as a base64 PNG (refused from its header
  // above the server's default input limit, before decoding).
  if (auto init = f.optional_string("init_image"); init && !init->empty()) {
    o.init_image = decode_image_field(*init, "init_image", ServerConfig{});
    o.strength = static_cast<float>(f.number("strength", o.strength, 0, 1));
  } else if (f.has("strength")) {
    throw std::invalid_argument("strength needs init_image (a base64 PNG)");
  }
  return o;
}

}  // namespace

std::string canonical_job_id(const nlohmann::json& object) {
  nlohmann::json without_id = object;
  without_id.erase("id");
  return sha256_hex(without_id.dump()).substr(0, 16);
}

uint64_t seed_from_job_id(const std::string& id) {
  return std::stoull(sha256_hex("seed:" + id).substr(0, 8), nullptr, 16);
}

QueueJob parse_queue_job(const nlohmann::json& object) {
  if (!object.is_object()) throw std::invalid_argument("a job must be a JSON object");
  QueueJob job;
  try {
    JsonFields f(object);
    job.model = f.string("model", "");
    if (job.model.empty()) throw std::invalid_argument("model is required");
    job.id = f.has("id") ? f.string("id", "") : canonical_job_id(object);
    check_id(job.id);
    job.options = read_options(f);
    const auto seed = f.optional_integer("seed", -1, 0xffffffffLL);
    job.options.seed = seed && *seed >= 0 ? static_cast<uint64_t>(*seed) : seed_from_job_id(job.id);
    f.refuse_unknown("queue jobs take model, id and the library's option names");
    check_limits(job.options, ServerConfig{}, {});
  } catch (const HttpError& e) {
    throw std::invalid_argument(e.what());
  }
  job.json = object;
  job.json["id"] = job.id;
  job.json["seed"] = job.options.seed;
  return job;
}

}  // namespace diffuse::serve
