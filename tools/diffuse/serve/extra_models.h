// LoRAs and ControlNets a request names: resolved against the server's --lora-dir and
// --controlnet-dir (by name only, never a client's path), and listed for the A1111 routes.
#pragma once

#include <string>
#include <vector>

#include "diffuse/diffuse.hpp"
#include "serve/server.h"

namespace diffuse::serve {

/// The LoRAs of `dir`: the stems of its *.safetensors files, sorted ("" dir: none).
std::vector<std::string> lora_names(const std::string& dir);
/// DIR/NAME.safetensors. HttpError 422 naming `what` (the tag or field) and the folder when the
/// server has no --lora-dir, NAME has a '/', '\' or "..", or the file does not exist.
std::string resolve_lora(const ServerConfig& config, const std::string& name,
                         const std::string& what);

/// The ControlNets of `dir`: folders with a config.json and the stems of *.safetensors / *.pth
/// files, sorted.
std::vector<std::string> controlnet_names(const std::string& dir);
/// NAME as DIR/NAME (a diffusers folder), DIR/NAME.safetensors or DIR/NAME.pth, after dropping
/// a trailing " [hash]" (the ControlNet extension's "control_v11p_sd15_canny [d14c016b]").
/// HttpError 422 as resolve_lora.
std::string resolve_controlnet(const ServerConfig& config, const std::string& name,
                               const std::string& what);

/// Strips A1111's extra-network tags from o.prompt and o.negative_prompt (fields `prompt_field`
/// and `negative_field` in messages) and appends their LoRAs to o.loras, resolved against
/// --lora-dir; with `activate` false (A1111's disable_extra_networks) the tags are only removed.
/// Tags of other types are removed with a warning, as A1111 does.
void apply_prompt_loras(GenerateOptions& o, const ServerConfig& config, bool activate,
                        std::vector<std::string>& warnings, const std::string& prompt_field,
                        const std::string& negative_field);

/// HttpError 422 when a request needs what a --queue front cannot send its workers (LoRAs and
/// ControlNets are files on this machine).
void check_queue_support(const GenerateOptions& o, const ServerConfig& config);

}  // namespace diffuse::serve
