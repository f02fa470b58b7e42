// What every generating route shares: the server's limits on a request, init images from base64,
// random seeds and the model a request names.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "diffuse/diffuse.hpp"
#include "serve/json_fields.h"
#include "serve/server.h"

namespace diffuse::serve {

/// HttpError 422 naming the field when `o` is outside the server's limits or malformed (sizes
/// not multiples of 8, too many pixels, steps, images, strength). `names` maps our option names
/// to the route's own field names in messages.
struct FieldNames {
  const char* width = "width";
  const char* height = "height";
  const char* steps = "steps";
  const char* image_count = "image_count";
  const char* strength = "strength";
};
void check_limits(const GenerateOptions& o, const ServerConfig& config, const FieldNames& names);

/// The library's option names every JSON route shares (prompt, negative_prompt, steps,
/// guidance_scale, scheduler, karras_sigmas, timestep_spacing, eta, width, height, image_count,
/// rng, clip_skip), read with their one-line 422 messages. Seed, init image and strength stay with
/// the caller, whose rules for them differ.
GenerateOptions read_generation_fields(JsonFields& f, int default_steps);

/// Decodes a base64 (or data-URL) PNG field; refuses images over the input pixel limit from the
/// PNG header, before decoding. HttpError 422 naming `field`.
Image decode_image_field(const std::string& base64, const std::string& field,
                         const ServerConfig& config);

/// A seed from the request: -1 (or absent) draws a random one.
uint64_t resolve_seed(std::optional<int64_t> seed);

/// The registry name of the model a request names (the current model when empty).
std::string resolve_model(ModelRegistry& models, const std::string& name_or_title,
                          const std::string& field);

}  // namespace diffuse::serve
