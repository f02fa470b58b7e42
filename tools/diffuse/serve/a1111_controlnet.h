// A1111's `alwayson_scripts` as the sd-webui-controlnet extension fills it:
// {"controlnet": {"args": [unit, ...]}}, each unit {enabled, image, model, weight, guidance_start,
// guidance_end, control_mode, module, ...}, read into GenerateOptions::controlnets.
#pragma once

#include <nlohmann/json.hpp>

#include "diffuse/diffuse.hpp"
#include "serve/server.h"

namespace diffuse::serve {

/// Reads `alwayson_scripts` (null or an object). The "controlnet" script's enabled units become
/// o.controlnets (models resolved against --controlnet-dir; "ControlNet is more important" sets
/// o.control_guess_mode); for img2img (`txt2img` false) a unit without an image takes
/// o.init_image, as the extension does. Any other script, a preprocessor module other than
/// "none" or "canny", control_mode 1 and options the library cannot follow are refused with
/// HttpError 422 naming the field.
void apply_alwayson_scripts(const nlohmann::json* scripts, bool txt2img, GenerateOptions& o,
                            const ServerConfig& config);

/// `alwayson_scripts` for the request echo: the units' images replaced by null.
nlohmann::json alwayson_scripts_echo(const nlohmann::json& scripts);

}  // namespace diffuse::serve
