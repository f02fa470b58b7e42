#include "serve/generation_request.h"

#include <random>

#include "serve/codec.h"
#include "serve/http_error.h"

namespace diffuse::serve {

namespace {

void check_side(int value, const char* field) {
  if (value == 0) return;  // the model's default
  if (value < 8 || value % 8 != 0)
    throw invalid_parameter(std::string(field) + " must be a positive multiple of 8, got " +
                            std::to_string(value));
}

}  // namespace

void check_limits(const GenerateOptions& o, const ServerConfig& config, const FieldNames& names) {
  check_side(o.width, names.width);
  check_side(o.height, names.height);
  if (uint64_t(o.width) * uint64_t(o.height) > config.max_pixels)
    throw invalid_parameter(std::string(names.width) + " x " + names.height + " = " +
                            std::to_string(uint64_t(o.width) * uint64_t(o.height)) +
                            " pixels is over this server's limit of " +
                            std::to_string(config.max_pixels) + " (--max-pixels)");
  if (o.steps < 1 || o.steps > config.max_steps)
    throw invalid_parameter(std::string(names.steps) + " must be between 1 and " +
                            std::to_string(config.max_steps) + ", got " + std::to_string(o.steps));
  if (o.image_count < 1 || o.image_count > config.max_images)
    throw invalid_parameter(std::string(names.image_count) + " must be between 1 and " +
                            std::to_string(config.max_images) + ", got " +
                            std::to_string(o.image_count));
  if (o.init_image && o.strength && !(*o.strength > 0.f && *o.strength <= 1.f))
    throw invalid_parameter(std::string(names.strength) + " must be in (0, 1]");
}

GenerateOptions read_generation_fields(JsonFields& f, int default_steps) {
  GenerateOptions o;
  o.prompt = f.string("prompt", "");
  // Absent: no negative prompt (SDXL's force_zeros_for_empty_prompt applies); "" encodes "".
  if (auto negative = f.optional_string("negative_prompt")) o.negative_prompt = *negative;
  o.steps = static_cast<int>(f.integer("steps", default_steps, 1, 100000));
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
  o.prompt_syntax = f.string("prompt_syntax", "plain");
  if (o.prompt_syntax != "plain" && o.prompt_syntax != "a1111")
    throw invalid_parameter("prompt_syntax must be \"plain\" or \"a1111\", got \"" +
                            o.prompt_syntax + "\"");
  o.vae_tiling = f.string("vae_tiling", "auto");
  if (o.vae_tiling != "auto" && o.vae_tiling != "on" && o.vae_tiling != "off")
    throw invalid_parameter("vae_tiling must be \"auto\", \"on\" or \"off\", got \"" +
                            o.vae_tiling + "\"");
  o.vae_tile_size = static_cast<int>(f.integer("vae_tile_size", 0, 0, 1 << 16));
  return o;
}

Image decode_image_field(const std::string& base64, const std::string& field,
                         const ServerConfig& config) {
  const std::vector<uint8_t> bytes = base64_decode(base64, field);
  try {
    return decode_png(bytes.data(), bytes.size(), field, config.max_input_pixels);
  } catch (const FileError& e) {
    throw invalid_parameter(std::string(e.what()) +
                            (std::string(e.what()).find("not a PNG") != std::string::npos
                                 ? " (send a base64-encoded PNG)"
                                 : ""));
  }
}

uint64_t resolve_seed(std::optional<int64_t> seed) {
  if (seed && *seed >= 0) return static_cast<uint64_t>(*seed);
  // A1111 draws seeds in [0, 2^32); so do we, so the seed fits every client's integer type.
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng() & 0xffffffffu;
}

std::string resolve_model(ModelRegistry& models, const std::string& name_or_title,
                          const std::string& field) {
  if (name_or_title.empty()) return models.current();
  const ModelEntry* e = models.find(name_or_title);
  if (!e) {
    std::string names;
    for (const auto& m : models.entries()) names += (names.empty() ? "" : ", ") + m.name;
    throw invalid_parameter(field + ": unknown model \"" + name_or_title +
                            "\" (available: " + names + ")");
  }
  return e->name;
}

}  // namespace diffuse::serve
