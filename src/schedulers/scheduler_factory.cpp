// make_scheduler(): diffusers class name -> scheduler; scheduler_preset(): user-facing sampler
// names -> class + config overrides + the AUTOMATIC1111 "Sampler:" name written to PNG metadata.
#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "diffuse/error.hpp"
#include "schedulers/scheduler.h"
#include "schedulers/scheduler_registry.h"

namespace diffuse {

namespace {

using Factory = std::unique_ptr<Scheduler> (*)(const SchedulerConfig&);

struct ClassEntry {
  const char* class_name;
  Factory make;
  const char* a1111_name;  // what A1111 calls the sampler when its settings are the defaults
};

// A1111 names are the entries of AUTOMATIC1111's sampler list that run the same algorithm: PNDM
// with skip_prk_steps is its "PLMS", KDPM2 its "DPM2", DPMSolverMultistep (dpmsolver++, order 2)
// its "DPM++ 2M". A1111 writes the sigma schedule into the name only for Karras ("DPM++ 2M
// Karras"); other variations (trailing spacing, v-prediction, zero-SNR) keep the plain name, as
// A1111 records those in the model, not the sampler. DDPM and LCM have no A1111 sampler of their
// own; their diffusers names are used.
const ClassEntry kClasses[] = {
    {"PNDMScheduler", make_pndm, "PLMS"},
    {"DDIMScheduler", make_ddim, "DDIM"},
    {"DDPMScheduler", make_ddpm, "DDPM"},
    {"EulerDiscreteScheduler", make_euler_discrete, "Euler"},
    {"EulerAncestralDiscreteScheduler", make_euler_ancestral, "Euler a"},
    {"LMSDiscreteScheduler", make_lms_discrete, "LMS"},
    {"HeunDiscreteScheduler", make_heun_discrete, "Heun"},
    {"LCMScheduler", make_lcm, "LCM"},
    {"DPMSolverMultistepScheduler", make_dpmsolver_multistep, "DPM++ 2M"},
    {"UniPCMultistepScheduler", make_unipc_multistep, "UniPC"},
    {"KDPM2DiscreteScheduler", make_kdpm2_discrete, "DPM2"},
    {"KDPM2AncestralDiscreteScheduler", make_kdpm2_ancestral_discrete, "DPM2 a"},
};

std::string class_list() {
  std::string s;
  for (const auto& e : kClasses) s += (s.empty() ? "" : ", ") + std::string(e.class_name);
  return s;
}

const ClassEntry* find_class(std::string_view name) {
  for (const auto& e : kClasses)
    if (name == e.class_name) return &e;
  return nullptr;
}

struct PresetEntry {
  const char* name;
  const char* class_name;
  const char* overrides_json;
  const char* a1111_name;
};

// The overrides are exactly those of the golden scheduler cases of the same name (applied over
// the model's own scheduler config, e.g. SD 1.5's).
const PresetEntry kPresets[] = {
    {"pndm", "PNDMScheduler", "{}", "PLMS"},
    {"ddim", "DDIMScheduler", "{}", "DDIM"},
    {"ddpm", "DDPMScheduler", "{}", "DDPM"},
    {"euler", "EulerDiscreteScheduler", "{}", "Euler"},
    {"euler-a", "EulerAncestralDiscreteScheduler", "{}", "Euler a"},
    {"euler-trailing", "EulerDiscreteScheduler", R"({"timestep_spacing":"trailing"})", "Euler"},
    {"euler-v", "EulerDiscreteScheduler", R"({"prediction_type":"v_prediction"})", "Euler"},
    {"lms", "LMSDiscreteScheduler", "{}", "LMS"},
    {"heun", "HeunDiscreteScheduler", "{}", "Heun"},
    {"kdpm2", "KDPM2DiscreteScheduler", "{}", "DPM2"},
    {"kdpm2-a", "KDPM2AncestralDiscreteScheduler", "{}", "DPM2 a"},
    {"dpmpp-2m", "DPMSolverMultistepScheduler", "{}", "DPM++ 2M"},
    {"dpmpp-2m-karras", "DPMSolverMultistepScheduler", R"({"use_karras_sigmas":true})",
     "DPM++ 2M Karras"},
    {"dpmpp-2m-sde", "DPMSolverMultistepScheduler", R"({"algorithm_type":"sde-dpmsolver++"})",
     "DPM++ 2M SDE"},
    {"dpmpp-2m-v", "DPMSolverMultistepScheduler", R"({"prediction_type":"v_prediction"})",
     "DPM++ 2M"},
    {"unipc", "UniPCMultistepScheduler", "{}", "UniPC"},
    {"lcm", "LCMScheduler", "{}", "LCM"},
    {"ddim-v-trailing-rescale", "DDIMScheduler",
     R"({"prediction_type":"v_prediction","timestep_spacing":"trailing","rescale_betas_zero_snr":true})",
     "DDIM"},
};

std::string lower(std::string_view s) {
  std::string r(s);
  std::transform(r.begin(), r.end(), r.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return r;
}

}  // namespace

std::unique_ptr<Scheduler> make_scheduler(const nlohmann::json& config,
                                          std::string_view class_name) {
  if (!config.is_object())
    throw ConfigError("scheduler config must be a JSON object, got " + config.dump());
  std::string name(class_name);
  if (name.empty()) {
    auto it = config.find("_class_name");
    if (it == config.end() || !it->is_string())
      throw ConfigError("scheduler config has no \"_class_name\" (supported: " + class_list() +
                        ")");
    name = it->get<std::string>();
  }
  const ClassEntry* e = find_class(name);
  if (!e)
    throw ConfigError("unsupported scheduler class \"" + name + "\" (supported: " + class_list() +
                      ")");
  return e->make(SchedulerConfig(config));
}

SchedulerPreset scheduler_preset(std::string_view name) {
  const std::string key = lower(name);
  for (const auto& p : kPresets)
    if (key == p.name) return {p.class_name, p.overrides_json, p.a1111_name};
  if (const ClassEntry* e = find_class(name)) return {e->class_name, "{}", e->a1111_name};
  std::string list;
  for (const auto& n : scheduler_preset_names()) list += (list.empty() ? "" : ", ") + n;
  throw ConfigError("unknown scheduler \"" + std::string(name) + "\" (supported: " + list + ")");
}

std::vector<std::string> scheduler_preset_names() {
  std::vector<std::string> names;
  for (const auto& p : kPresets) names.emplace_back(p.name);
  for (const auto& e : kClasses) names.emplace_back(e.class_name);
  return names;
}

}  // namespace diffuse
