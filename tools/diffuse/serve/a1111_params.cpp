#include "serve/a1111_params.h"

#include <algorithm>
#include <cctype>

#include "serve/a1111_controlnet.h"
#include "serve/extra_models.h"
#include "serve/generation_request.h"
#include "serve/http_error.h"
#include "serve/json_fields.h"

namespace diffuse::serve {

const std::vector<A1111Sampler>& a1111_samplers() {
  static const std::vector<A1111Sampler> samplers = {
      {"Euler a", "euler-a", false},
      {"Euler", "euler", false},
      {"LMS", "lms", false},
      {"LMS Karras", "lms", true},
      {"Heun", "heun", false},
      {"DPM2", "kdpm2", false},
      {"DPM2 Karras", "kdpm2", true},
      {"DPM2 a", "kdpm2-a", false},
      {"DPM2 a Karras", "kdpm2-a", true},
      {"DPM++ 2M", "dpmpp-2m", false},
      {"DPM++ 2M Karras", "dpmpp-2m", true},
      {"DPM++ 2M SDE", "dpmpp-2m-sde", false},
      {"DPM++ 2M SDE Karras", "dpmpp-2m-sde", true},
      {"DDIM", "ddim", false},
      {"PLMS", "pndm", false},
      {"UniPC", "unipc", false},
      {"LCM", "lcm", false},
      {"DDPM", "ddpm", false},
  };
  return samplers;
}

std::string a1111_label(const std::string& preset) {
  if (preset == "dpmpp-2m-karras") return "DPM++ 2M Karras";
  for (const auto& s : a1111_samplers())
    if (!s.karras && preset == s.preset) return s.name;
  for (const auto& s : a1111_samplers())  // longest preset that prefixes this variant
    if (!s.karras && preset.rfind(std::string(s.preset) + "-", 0) == 0 &&
        std::string(s.preset).find('-') == std::string(s.preset).rfind('-'))
      return std::string(s.name) + " (" + preset + ")";
  return preset;
}

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Sets scheduler/karras from A1111's sampler_name and its separate `scheduler` field.
void apply_sampler(GenerateOptions& o, const std::string& sampler, const std::string& schedule) {
  bool found = false;
  for (const auto& s : a1111_samplers()) {
    if (lower(sampler) != lower(s.name)) continue;
    o.scheduler = s.preset;
    if (s.karras) o.karras_sigmas = true;
    found = true;
  }
  if (!found) {
    for (const auto& name : scheduler_names())
      if (lower(sampler) == lower(name)) {
        o.scheduler = name;
        found = true;
      }
  }
  if (!found) {
    std::string names;
    for (const auto& s : a1111_samplers())
      names += (names.empty() ? "" : ", ") + std::string(s.name);
    throw invalid_parameter("sampler_name: unsupported sampler \"" + sampler +
                            "\" (supported: " + names + ")");
  }
  const std::string sch = lower(schedule);
  if (sch == "karras") {
    o.karras_sigmas = true;
  } else if (!(sch.empty() || sch == "automatic")) {
    throw invalid_parameter("scheduler: unsupported schedule type \"" + schedule +
                            "\" (supported: Automatic, Karras)");
  }
}

// Fields diffuse does not implement, with A1111's default: any other value is refused. A null
// value always means the default.
struct Unimplemented {
  const char* name;
  const char* default_json;
  A1111Route only = A1111Route::Txt2Img;
  bool both = true;
};
const Unimplemented kUnimplemented[] = {
    {"subseed_strength", "0"},
    {"seed_resize_from_h", "-1"},
    {"seed_resize_from_w", "-1"},
    {"styles", "[]"},
    {"restore_faces", "false"},
    {"tiling", "false"},
    {"s_min_uncond", "0"},
    {"s_churn", "0"},
    {"s_tmax", "0"},
    {"s_tmin", "0"},
    {"s_noise", "1"},
    {"hr_resize_x", "0"},
    {"hr_resize_y", "0"},
    {"script_name", "\"\""},
    {"script_args", "[]"},
    {"save_images", "false"},
    {"firstpass_image", "\"\""},
    {"infotext", "\"\""},
    {"resize_mode", "0", A1111Route::Img2Img, false},
    {"image_cfg_scale", "\"\"", A1111Route::Img2Img, false},
    {"initial_noise_multiplier", "1", A1111Route::Img2Img, false},
    {"latent_mask", "\"\"", A1111Route::Img2Img, false},
    {"include_init_images", "false", A1111Route::Img2Img, false},
};

// Fields whose value has no effect here, accepted as A1111 accepts them: options about saving
// to disk (the server saves nothing), and the second-pass settings diffuse's hires fix takes
// from the first pass (checkpoint, sampler, prompts). (The mask and hires settings are read
// where they apply.)
const char* const kNoEffect[] = {"do_not_save_samples",
                                 "do_not_save_grid",
                                 "override_settings_restore_afterwards",
                                 "comments",
                                 "force_task_id",
                                 "firstphase_width",
                                 "firstphase_height",
                                 "hr_checkpoint_name",
                                 "hr_sampler_name",
                                 "hr_scheduler",
                                 "hr_prompt",
                                 "hr_negative_prompt",
                                 "sampler_index"};

bool is_default(const nlohmann::json& value, const nlohmann::json& fallback) {
  if (value.is_null() || value == fallback) return true;
  // A1111 spells "no value" as null, "", "None", false or -1 depending on the client.
  if (fallback.is_string() && fallback.get<std::string>().empty())
    return value == false || value == "None" || value == "";
  if (fallback == -1) return value == 0;
  if (fallback == 0 && value.is_number()) return value.get<double>() == 0;
  return false;
}

void check_unimplemented(JsonFields& f, const nlohmann::json& body, A1111Route route) {
  for (const auto& u : kUnimplemented) {
    if (!u.both && u.only != route) continue;
    f.accept(u.name);
    auto it = body.find(u.name);
    if (it == body.end()) continue;
    const nlohmann::json fallback = nlohmann::json::parse(u.default_json);
    if (!is_default(*it, fallback))
      throw invalid_parameter(std::string(u.name) + " = " + it->dump() +
                              " is not supported by diffuse (leave it at its default " +
                              u.default_json + ")");
  }
  for (const char* name : kNoEffect) f.accept(name);
}

// A1111's hires fix (txt2img): enable_hr with hr_scale, hr_upscaler, hr_second_pass_steps and
// denoising_strength, read (and range-checked) even when off, as A1111 accepts them.
void read_hires(JsonFields& f, GenerateOptions& o) {
  const bool enabled = f.boolean("enable_hr", false);
  const double scale = f.number("hr_scale", 2.0, 1.0, 8.0);
  const int64_t steps = f.integer("hr_second_pass_steps", 0, 0, 1000);
  const double strength = f.number("denoising_strength", 0.7, 0.0, 1.0);
  const std::string upscaler = f.optional_string("hr_upscaler").value_or("Latent");
  if (!enabled) return;
  // A1111's upscaler names for what diffuse implements; its "Latent" is bilinear.
  static const std::pair<const char*, const char*> kUpscalers[] = {
      {"Latent", "latent-bilinear"},
      {"Latent (bilinear)", "latent-bilinear"},
      {"Latent (nearest)", "latent"},
      {"Lanczos", "lanczos"}};
  const auto it = std::find_if(std::begin(kUpscalers), std::end(kUpscalers),
                               [&](const auto& u) { return upscaler == u.first; });
  if (it == std::end(kUpscalers))
    throw invalid_parameter("hr_upscaler \"" + upscaler +
                            "\" is not supported (supported: Latent, Latent (bilinear), "
                            "Latent (nearest), Lanczos)");
  if (!(strength > 0.0))
    throw invalid_parameter("denoising_strength must be above 0 with enable_hr");
  o.hires = HiresFix{static_cast<float>(scale), static_cast<int>(steps),
                     static_cast<float>(strength), it->second};
}

// A1111's SDXL refiner: refiner_checkpoint (a model of this server, by name or title) finishes
// the schedule after refiner_switch_at (diffusers' ensemble of experts).
void read_refiner(JsonFields& f, GenerateOptions& o, Server& server) {
  const double switch_at = f.number("refiner_switch_at", 0.8, 0.0, 1.0);
  const nlohmann::json* checkpoint = f.raw("refiner_checkpoint");
  if (!checkpoint || is_default(*checkpoint, "")) return;
  if (!checkpoint->is_string()) throw invalid_parameter("refiner_checkpoint must be a model name");
  const std::string name =
      resolve_model(server.models(), checkpoint->get<std::string>(), "refiner_checkpoint");
  o.refiner = server.models().find(name)->path;
  o.high_noise_frac = static_cast<float>(switch_at);
}

// override_settings: the options a request may change for itself.
void apply_override_settings(JsonFields& f, GenerateOptions& o, std::string& model,
                             Server& server) {
  const nlohmann::json* overrides = f.raw("override_settings");
  if (!overrides) return;
  if (!overrides->is_object()) throw invalid_parameter("override_settings must be an object");
  JsonFields s(*overrides, "override_settings.");
  if (auto m = s.optional_string("sd_model_checkpoint"))
    model = resolve_model(server.models(), *m, "override_settings.sd_model_checkpoint");
  if (auto c = s.optional_integer("CLIP_stop_at_last_layers", 1, 12))
    o.clip_skip = static_cast<int>(*c) - 1;
  if (auto vae = s.optional_string("sd_vae"); vae && *vae != "Automatic" && *vae != "None")
    throw invalid_parameter("override_settings.sd_vae: separate VAE files are not supported yet");
  if (auto fmt = s.optional_string("samples_format"); fmt && lower(*fmt) != "png")
    throw invalid_parameter("override_settings.samples_format: only \"png\" is supported");
  if (auto delta = s.optional_integer("eta_noise_seed_delta", INT64_MIN, INT64_MAX);
      delta && *delta)
    throw invalid_parameter("override_settings.eta_noise_seed_delta: only 0 is supported");
  s.refuse_unknown(
      "supported: sd_model_checkpoint, CLIP_stop_at_last_layers, sd_vae, "
      "samples_format, eta_noise_seed_delta");
}

// A1111's inpainting fields. Without a mask they have no effect (accepted whatever their value, as
// A1111 ignores them); with one, what diffuse implements (diffusers' StableDiffusionInpaintPipeline
// on the whole picture, A1111's "original" fill) is read and the rest refused.
const char* const kMaskFields[] = {"mask_blur",
                                   "mask_blur_x",
                                   "mask_blur_y",
                                   "mask_round",
                                   "inpainting_fill",
                                   "inpaint_full_res",
                                   "inpaint_full_res_padding",
                                   "inpainting_mask_invert"};

void read_mask(JsonFields& f, GenerateOptions& o, const ServerConfig& config) {
  const nlohmann::json* mask = f.raw("mask");
  if (!mask || is_default(*mask, "")) {
    for (const char* name : kMaskFields) f.accept(name);
    return;
  }
  if (!mask->is_string()) throw invalid_parameter("mask must be a base64 PNG");
  Image image = decode_image_field(mask->get<std::string>(), "mask", config);
  if (f.integer("inpainting_mask_invert", 0, 0, 1) == 1) {  // "Inpaint not masked"
    std::vector<uint8_t> rgb8 = image.to_rgb8();
    for (uint8_t& v : rgb8) v = static_cast<uint8_t>(255 - v);
    image = Image::from_rgb8(image.width, image.height, rgb8);
  }
  o.mask_image = std::move(image);
  // A1111: mask_blur sets both mask_blur_x and mask_blur_y (default 4); diffuse blurs both ways
  // alike.
  constexpr int64_t kMaxBlur = 256;
  const std::optional<int64_t> blur = f.optional_integer("mask_blur", 0, kMaxBlur);
  const std::optional<int64_t> blur_x = f.optional_integer("mask_blur_x", 0, kMaxBlur);
  const std::optional<int64_t> blur_y = f.optional_integer("mask_blur_y", 0, kMaxBlur);
  const int64_t value = blur ? *blur : blur_x.value_or(4);
  for (const auto& [name, axis] :
       {std::pair{"mask_blur_x", blur_x}, std::pair{"mask_blur_y", blur_y}}) {
    // A client sending every field sends the axes at their default 4 beside its mask_blur, which
    // overrides them in A1111.
    if (!axis || *axis == value || (blur && *axis == 4)) continue;
    throw invalid_parameter(std::string(name) + " = " + std::to_string(*axis) + " differs from " +
                            (blur ? "mask_blur = " : "mask_blur_x = ") + std::to_string(value) +
                            ": separate horizontal and vertical mask blurs are not supported");
  }
  o.mask_blur = static_cast<int>(value);
  // 0 fill, 1 original, 2 latent noise, 3 latent nothing (the web UI's "Masked content").
  constexpr const char* kMaskedContent[] = {"fill", "original", "latent-noise", "latent-nothing"};
  o.masked_content = kMaskedContent[f.integer("inpainting_fill", 1, 0, 3)];
  // "Only masked": diffusers' padding_mask_crop with A1111's padding. Unset it is "whole picture"
  // (A1111's API class defaults to true, its web UI to whole picture).
  const nlohmann::json* full = f.raw("inpaint_full_res");
  constexpr int64_t kMaxCropPadding = 16384;
  const std::optional<int64_t> padding =
      f.optional_integer("inpaint_full_res_padding", 0, kMaxCropPadding);
  if (full && !(*full == false || *full == 0)) {
    if (!(*full == true || *full == 1))
      throw invalid_parameter("inpaint_full_res must be true or false");
    o.mask_crop = static_cast<int>(padding.value_or(0));
  }
  f.accept("mask_round");  // diffusers' semantics: the mask is thresholded anyway
}

GenerateOptions parse_common(JsonFields& f, A1111Route route, Server& server, std::string& model,
                             int& image_total, std::vector<std::string>& warnings) {
  GenerateOptions o;
  o.prompt_syntax = "a1111";  // emphasis, BREAK and long prompts as the web UI reads them
  o.prompt = f.string("prompt", "");
  o.negative_prompt = f.string("negative_prompt", "");
  o.steps = static_cast<int>(f.integer("steps", 50, 1, 100000));
  o.guidance_scale = static_cast<float>(f.number("cfg_scale", 7.0, -100, 100));
  o.width = static_cast<int>(f.integer("width", 512, 1, 1 << 16));
  o.height = static_cast<int>(f.integer("height", 512, 1, 1 << 16));
  o.seed = resolve_seed(f.optional_integer("seed", -1, INT64_MAX));
  if (const int64_t sub = f.integer("subseed", -1, -1, INT64_MAX); sub != -1)
    warnings.push_back("subseed has no effect (subseed_strength is 0)");
  std::string sampler = f.string("sampler_name", "");
  if (sampler.empty()) sampler = f.string("sampler_index", "Euler");
  apply_sampler(o, sampler, f.string("scheduler", ""));
  if (auto eta = f.optional_number("eta", 0, 10)) o.eta = *eta;
  {
    std::lock_guard<std::mutex> lock(server.a1111_options().mutex);
    o.clip_skip = server.a1111_options().clip_stop_at_last_layers - 1;
  }
  model = resolve_model(server.models(), "", "");
  apply_override_settings(f, o, model, server);
  const int64_t batch = f.integer("batch_size", 1, 1, server.config().max_images);
  const int64_t iterations = f.integer("n_iter", 1, 1, server.config().max_images);
  if (batch * iterations > server.config().max_images)
    throw invalid_parameter("batch_size x n_iter = " + std::to_string(batch * iterations) +
                            " images is over this server's limit of " +
                            std::to_string(server.config().max_images));
  image_total = static_cast<int>(batch * iterations);
  if (route == A1111Route::Txt2Img) read_hires(f, o);
  read_refiner(f, o, server);
  if (route == A1111Route::Img2Img) {
    o.strength = static_cast<float>(f.number("denoising_strength", 0.75, 0, 1));
    const nlohmann::json* images = f.raw("init_images");
    if (!images || !images->is_array() || images->empty() || !(*images)[0].is_string())
      throw invalid_parameter("init_images must be a list with one base64 PNG");
    if (images->size() > 1)
      throw invalid_parameter("init_images: one image is supported, got " +
                              std::to_string(images->size()));
    o.init_image =
        decode_image_field((*images)[0].get<std::string>(), "init_images[0]", server.config());
    read_mask(f, o, server.config());
  } else {
    for (const char* name : kMaskFields) f.accept(name);  // no effect without a mask
  }
  // <lora:NAME:WEIGHT> in the prompts; disable_extra_networks removes the tags unused.
  apply_prompt_loras(o, server.config(), !f.boolean("disable_extra_networks", false), warnings,
                     "prompt", "negative_prompt");
  apply_alwayson_scripts(f.raw("alwayson_scripts"), route == A1111Route::Txt2Img, o,
                         server.config());
  check_queue_support(o, server.config());
  f.accept("send_images");
  return o;
}

}  // namespace

JobRequest parse_a1111_request(const nlohmann::json& body, A1111Route route, Server& server) {
  JsonFields f(body);
  JobRequest r;
  r.origin = "a1111";
  int image_total = 1;
  GenerateOptions o = parse_common(f, route, server, r.model, image_total, r.warnings);
  o.preview = true;
  check_unimplemented(f, body, route);
  f.refuse_unknown("not a field of A1111's " +
                   std::string(route == A1111Route::Txt2Img ? "txt2img" : "img2img") + " API");
  // img2img: width/height are where the init image is resized to (A1111's resize_mode 0).
  check_limits(o, server.config(),
               {"width", "height", "steps", "batch_size", "denoising_strength"});
  for (int i = 0; i < image_total; ++i) {
    GenerateOptions run = o;
    run.seed = o.seed + static_cast<uint64_t>(i);
    r.runs.push_back(std::move(run));
  }
  r.echo = a1111_parameters_echo(body, route);
  return r;
}

nlohmann::json a1111_parameters_echo(const nlohmann::json& body, A1111Route route) {
  nlohmann::json echo = {{"prompt", ""},
                         {"negative_prompt", ""},
                         {"seed", -1},
                         {"subseed", -1},
                         {"sampler_name", "Euler"},
                         {"scheduler", nullptr},
                         {"batch_size", 1},
                         {"n_iter", 1},
                         {"steps", 50},
                         {"cfg_scale", 7.0},
                         {"width", 512},
                         {"height", 512},
                         {"send_images", true},
                         {"save_images", false},
                         {"styles", nlohmann::json::array()},
                         {"override_settings", nullptr}};
  echo["denoising_strength"] = route == A1111Route::Img2Img ? 0.75 : 0.0;
  for (const auto& [k, v] : body.items()) echo[k] = v;
  // Images are large, and the client has them.
  if (route == A1111Route::Img2Img) echo["init_images"] = nullptr;
  if (echo.contains("mask")) echo["mask"] = nullptr;
  if (echo.contains("alwayson_scripts"))
    echo["alwayson_scripts"] = alwayson_scripts_echo(echo["alwayson_scripts"]);
  return echo;
}

namespace {

// Splits A1111's settings line "Steps: 20, Sampler: Euler a, Lora hashes: \"a: 1, b: 2\"" into
// key/value pairs; values may be double-quoted (with commas inside).
std::vector<std::pair<std::string, std::string>> settings_pairs(const std::string& line) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == ',')) ++i;
    const size_t colon = line.find(':', i);
    if (colon == std::string::npos) break;
    const std::string key = line.substr(i, colon - i);
    size_t v = colon + 1;
    while (v < line.size() && line[v] == ' ') ++v;
    std::string value;
    if (v < line.size() && line[v] == '"') {
      size_t end = v + 1;
      while (end < line.size() && line[end] != '"') end += line[end] == '\\' ? 2 : 1;
      value = line.substr(v, std::min(end + 1, line.size()) - v);
      i = end + 1;
    } else {
      const size_t comma = line.find(',', v);
      value = line.substr(v, comma == std::string::npos ? std::string::npos : comma - v);
      i = comma == std::string::npos ? line.size() : comma;
    }
    while (!value.empty() && value.back() == ' ') value.pop_back();
    if (!key.empty()) out.emplace_back(key, value);
  }
  return out;
}

}  // namespace

std::map<std::string, std::string> parse_infotext(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  std::string trimmed = text;
  while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == ' ')) trimmed.pop_back();
  while (start <= trimmed.size()) {
    const size_t nl = trimmed.find('\n', start);
    lines.push_back(
        trimmed.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  std::map<std::string, std::string> out;
  // The last line is the settings line when it holds at least three "key: value" pairs.
  std::vector<std::pair<std::string, std::string>> settings;
  if (!lines.empty()) settings = settings_pairs(lines.back());
  if (settings.size() >= 3) {
    lines.pop_back();
  } else {
    settings.clear();
  }
  std::string prompt, negative;
  bool in_negative = false;
  for (std::string line : lines) {
    if (line.rfind("Negative prompt:", 0) == 0) {
      in_negative = true;
      line = line.substr(16);
      while (!line.empty() && line.front() == ' ') line.erase(0, 1);
    }
    std::string& target = in_negative ? negative : prompt;
    target += (target.empty() ? "" : "\n") + line;
  }
  out["Prompt"] = prompt;
  out["Negative prompt"] = negative;
  for (auto& [k, v] : settings) out[k] = v;
  return out;
}

}  // namespace diffuse::serve
