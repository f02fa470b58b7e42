// AUTOMATIC1111's API vocabulary: its sampler names, its txt2img/img2img request fields with
// their defaults, and its infotext (the PNG `parameters` text) parser.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "serve/job.h"
#include "serve/server.h"

namespace diffuse::serve {

struct A1111Sampler {
  const char* name;    // "DPM++ 2M Karras"
  const char* preset;  // diffuse's scheduler preset, "dpmpp-2m"
  bool karras;         // with Karras sigmas
};
/// Every sampler name the A1111 routes accept (A1111's names; diffuse's preset names work too).
const std::vector<A1111Sampler>& a1111_samplers();

/// The A1111 name of a diffuse scheduler preset, for menus: "DPM++ 2M Karras" for
/// "dpmpp-2m-karras"; a variant A1111 has no name for gets its base name and the preset name,
/// "Euler (euler-trailing)".
std::string a1111_label(const std::string& preset);

enum class A1111Route { Txt2Img, Img2Img };

/// Parses a txt2img/img2img body into a job: one run per image, image i with seed + i (A1111's
/// batch rule), A1111's defaults (Euler, cfg 7, 50 steps, 512x512). A field diffuse does not
/// implement is refused (422) when its value differs from A1111's default; an unknown field too.
JobRequest parse_a1111_request(const nlohmann::json& body, A1111Route route, Server& server);

/// The `parameters` echo of a response: the request over A1111's defaults.
nlohmann::json a1111_parameters_echo(const nlohmann::json& body, A1111Route route);

/// A1111's parse_generation_parameters: {"Prompt", "Negative prompt", "Steps", "Sampler", ...}.
std::map<std::string, std::string> parse_infotext(const std::string& text);

}  // namespace diffuse::serve
