#include "serve/queue_job.h"

#include <stdexcept>

#include "serve/codec.h"
#include "serve/generation_request.h"
#include "serve/http_error.h"
#include "serve/json_fields.h"

namespace diffuse::serve {

namespace {

// Ids name files (DIR/<id>.png) and Redis keys: a safe alphabet, no leading dot.
void check_id(const std::string& id) {
  if (id.empty() || id.size() > 128 || id[0] == '.')
    throw std::invalid_argument("id must be 1 to 128 characters and not start with '.'");
  for (char c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      throw std::invalid_argument("id \"" + id + "\": use only letters, digits, '-', '_' and '.'");
}

GenerateOptions read_options(JsonFields& f) {
  GenerateOptions o = read_generation_fields(f, GenerateOptions{}.steps);
  // Image-to-image: the init image travels in the job as a base64 PNG (refused from its header
  // above the server's default input limit, before decoding).
  // Inpainting: the mask too (any size), and its blur.
  if (auto init = f.optional_string("init_image"); init && !init->empty()) {
    o.init_image = decode_image_field(*init, "init_image", ServerConfig{});
    if (f.has("strength")) o.strength = static_cast<float>(f.number("strength", 0.8, 0, 1));
    if (auto mask = f.optional_string("mask_image"); mask && !mask->empty())
      o.mask_image = decode_image_field(*mask, "mask_image", ServerConfig{});
  } else if (f.has("strength")) {
    throw std::invalid_argument("strength needs init_image (a base64 PNG)");
  } else if (auto mask = f.optional_string("mask_image"); mask && !mask->empty()) {
    throw std::invalid_argument("mask_image needs init_image (a base64 PNG)");
  }
  o.mask_blur = static_cast<int>(f.integer("mask_blur", 0, 0, 256));
  if (o.mask_blur != 0 && !o.mask_image)
    throw std::invalid_argument("mask_blur needs mask_image (a base64 PNG)");
  if (f.has("masked_content")) {
    if (!o.mask_image)
      throw std::invalid_argument("masked_content needs mask_image (a base64 PNG)");
    o.masked_content = f.string("masked_content", "original");
  }
  if (f.has("mask_crop")) {
    if (!o.mask_image) throw std::invalid_argument("mask_crop needs mask_image (a base64 PNG)");
    o.mask_crop = static_cast<int>(f.integer("mask_crop", 0, 0, 16384));
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
