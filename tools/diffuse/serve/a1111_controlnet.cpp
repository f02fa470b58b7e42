#include "serve/a1111_controlnet.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "serve/extra_models.h"
#include "serve/generation_request.h"
#include "serve/http_error.h"
#include "serve/json_fields.h"

namespace diffuse::serve {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// An enum the extension takes as its index or its label; -1 when neither.
int enum_index(const nlohmann::json& v, const std::vector<std::vector<const char*>>& labels) {
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    return i >= 0 && i < int64_t(labels.size()) ? int(i) : -1;
  }
  if (v.is_string())
    for (size_t i = 0; i < labels.size(); ++i)
      for (const char* label : labels[i])
        if (lower(v.get<std::string>()) == lower(label)) return int(i);
  return -1;
}

const std::vector<std::vector<const char*>> kControlModes = {
    {"Balanced"}, {"My prompt is more important"}, {"ControlNet is more important"}};
const std::vector<std::vector<const char*>> kResizeModes = {
    {"Just Resize"},
    {"Crop and Resize", "Inner Fit (Scale to Fit)", "Scale to Fit (Inner Fit)"},
    {"Resize and Fill", "Outer Fit (Shrink to Fit)", "Envelope (Outer Fit)"}};

// The unit's image: a base64 PNG, or {"image": base64, "mask": null}; for img2img without one, the
// init image (as the extension does).
Image unit_image(JsonFields& f, const std::string& where, const ServerConfig& config,
                 const std::optional<Image>& init_image) {
  const nlohmann::json* image = f.raw("image");
  const nlohmann::json* legacy = f.raw("input_image");
  if (image && legacy)
    throw invalid_parameter(where + "input_image: give the image once, as \"image\"");
  std::string field = legacy ? "input_image" : "image";
  const nlohmann::json* v = image ? image : legacy;
  if (v && v->is_object()) {
    JsonFields inner(*v, where + field + ".");
    if (const nlohmann::json* m = inner.raw("mask"); m && !(m->is_string() && m->empty()))
      throw invalid_parameter(where + field +
                              ".mask: ControlNet masks are not supported (send the image alone)");
    v = inner.raw("image");
    field += ".image";
  }
  if ((!v || v->is_null() || (v->is_string() && v->get<std::string>().empty())) && init_image)
    return *init_image;
  if (!v || !v->is_string() || v->get<std::string>().empty())
    throw invalid_parameter(where + field +
                            ": a base64 PNG control image is required (a control map, or a "
                            "photo with module \"canny\")");
  return decode_image_field(v->get<std::string>(), where + field, config);
}

// Fields whose non-default values need what diffuse does not have.
void refuse_set(JsonFields& f, const std::string& where, const char* key, const char* what) {
  const nlohmann::json* v = f.raw(key);
  if (!v || (v->is_string() && v->empty()) || (v->is_array() && v->empty())) return;
  throw invalid_parameter(where + key + ": " + what + " not supported");
}

}  // namespace

void apply_alwayson_scripts(const nlohmann::json* scripts, bool txt2img, GenerateOptions& o,
                            const ServerConfig& config) {
  if (!scripts) return;
  if (!scripts->is_object()) throw invalid_parameter("alwayson_scripts must be an object");
  std::optional<bool> guess;  // the units' control_mode, which must agree
  for (const auto& [name, script] : scripts->items()) {
    const std::string where = "alwayson_scripts." + name;
    if (lower(name) != "controlnet")
      throw invalid_parameter(where +
                              ": this script is not supported (alwayson_scripts takes the "
                              "ControlNet extension's \"controlnet\" only)");
    if (script.is_null()) continue;
    if (!script.is_object()) throw invalid_parameter(where + " must be an object with \"args\"");
    JsonFields s(script, where + ".");
    const nlohmann::json* args = s.raw("args");
    s.refuse_unknown("the script takes \"args\", a list of ControlNet units");
    if (!args) continue;
    if (!args->is_array()) throw invalid_parameter(where + ".args must be a list of units");
    for (size_t i = 0; i < args->size(); ++i) {
      const std::string at = where + ".args[" + std::to_string(i) + "].";
      const nlohmann::json& unit = (*args)[i];
      if (!unit.is_object())
        throw invalid_parameter(at.substr(0, at.size() - 1) +
                                " must be an object (a ControlNet unit)");
      // The extension ignores fields it does not know; so do we. Absent `enabled` is true, as
      // the extension's API had it before 1.1.4xx made false the default.
      JsonFields f(unit, at);
      if (!f.boolean("enabled", true)) continue;
      const std::string module = f.string("module", "none");
      if (lower(module) != "none" && lower(module) != "canny")
        throw invalid_parameter(at + "module: preprocessor \"" + module +
                                "\" is not supported (diffuse runs \"canny\"; for the others "
                                "send the preprocessed map with module \"none\")");
      const std::string model = f.string("model", "None");
      if (model.empty() || lower(model) == "none")
        throw invalid_parameter(at + "model: a ControlNet model is required");
      ControlNetSpec c;
      c.model = resolve_controlnet(config, model, at + "model");
      c.scale = static_cast<float>(f.number("weight", 1.0, 0, 2));
      c.start = f.number("guidance_start", 0.0, 0, 1);
      if (f.has("guidance") && f.has("guidance_end"))
        throw invalid_parameter(at + "guidance: give guidance_end only");
      c.end = f.has("guidance_end") ? f.number("guidance_end", 1.0, 0, 1)
                                    : f.number("guidance", 1.0, 0, 1);
      if (!(c.start < c.end))
        throw invalid_parameter(at + "guidance_start must be below guidance_end");
      int mode = 0;  // control_mode
      if (const nlohmann::json* m = f.raw("control_mode")) {
        mode = enum_index(*m, kControlModes);
        if (mode < 0)
          throw invalid_parameter(at + "control_mode: " + m->dump() +
                                  " is not one of 0 \"Balanced\", 1 \"My prompt is more "
                                  "important\", 2 \"ControlNet is more important\"");
        if (mode == 1)
          throw invalid_parameter(at +
                                  "control_mode: 1 \"My prompt is more important\" is not "
                                  "supported (0 \"Balanced\" and 2 \"ControlNet is more "
                                  "important\", diffusers' guess mode, are)");
      }
      if (guess && *guess != (mode == 2))
        throw invalid_parameter(at +
                                "control_mode: every unit must have the same control_mode "
                                "(guess mode applies to the whole generation)");
      guess = mode == 2;
      c.image = unit_image(f, at, config, txt2img ? std::nullopt : o.init_image);
      if (lower(module) == "canny") {
        // The extension's thresholds: threshold_a low, threshold_b high; -1 means its default.
        // It runs canny at processor_res (the short side); diffuse at the image's own size.
        c.preprocessor = "canny";
        const double low = f.number("threshold_a", 100, -1, 10000),
                     high = f.number("threshold_b", 200, -1, 10000);
        c.low_threshold = static_cast<float>(low < 0 ? 100 : low);
        c.high_threshold = static_cast<float>(high < 0 ? 200 : high);
      }
      int resize = 1;  // the extension's default, "Crop and Resize"
      if (const nlohmann::json* r = f.raw("resize_mode")) {
        resize = enum_index(*r, kResizeModes);
        if (resize < 0)
          throw invalid_parameter(at + "resize_mode: " + r->dump() +
                                  " is not one of \"Just Resize\", \"Crop and Resize\", "
                                  "\"Resize and Fill\" (0, 1, 2)");
      }
      // diffuse stretches the image to the output size ("Just Resize"): the other modes give the
      // same when the aspect ratios agree.
      if (resize != 0 && uint64_t(c.image.width) * uint64_t(o.height) !=
                             uint64_t(c.image.height) * uint64_t(o.width))
        throw invalid_parameter(at +
                                "resize_mode: a control image of another aspect ratio than "
                                "the output's (" +
                                std::to_string(c.image.width) + "x" +
                                std::to_string(c.image.height) + " for " + std::to_string(o.width) +
                                "x" + std::to_string(o.height) +
                                ") needs resize_mode \"Just Resize\" (cropping and filling are "
                                "not supported)");
      refuse_set(f, at, "mask", "ControlNet masks are");
      refuse_set(f, at, "mask_image", "ControlNet masks are");
      refuse_set(f, at, "effective_region_mask", "effective region masks are");
      refuse_set(f, at, "advanced_weighting", "per-layer weights are");
      refuse_set(f, at, "ipadapter_input", "IP-Adapter inputs are");
      o.controlnets.push_back(std::move(c));
    }
  }
  o.control_guess_mode = !o.controlnets.empty() && guess.value_or(false);
}

nlohmann::json alwayson_scripts_echo(const nlohmann::json& scripts) {
  nlohmann::json echo = scripts;
  if (!echo.is_object()) return echo;
  for (auto& [name, script] : echo.items()) {
    if (!script.is_object() || !script.contains("args") || !script["args"].is_array()) continue;
    for (auto& unit : script["args"])
      if (unit.is_object())
        for (const char* key : {"image", "input_image", "mask", "mask_image"})
          if (unit.contains(key)) unit[key] = nullptr;
  }
  return echo;
}

}  // namespace diffuse::serve
