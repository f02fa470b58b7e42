// AUTOMATIC1111-compatible routes under /sdapi/v1/, so existing A1111 clients work unchanged.
#include <ctime>
#include <filesystem>
#include <fstream>

#include "serve/a1111_params.h"
#include "serve/codec.h"
#include "serve/extra_models.h"
#include "serve/http_error.h"
#include "serve/json_fields.h"
#include "serve/server.h"

namespace diffuse::serve {

namespace {

std::string job_timestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S", &tm);
  return buf;
}

// A1111's `info`: a JSON document, sent as a string.
std::string info_string(const JobRequest& r, const JobSnapshot& s, Server& server) {
  const GenerateOptions& o = r.runs.front();
  // The prompts as sent, <lora:...> tags included, as A1111 reports them.
  auto sent = [&r](const char* key, const std::string& fallback) {
    auto it = r.echo.find(key);
    return it != r.echo.end() && it->is_string() ? it->get<std::string>() : fallback;
  };
  const std::string prompt = sent("prompt", o.prompt);
  const std::string negative = sent("negative_prompt", o.negative_prompt.value_or(""));
  nlohmann::json seeds = nlohmann::json::array(), infotexts = nlohmann::json::array(),
                 prompts = nlohmann::json::array(), negatives = nlohmann::json::array();
  for (const auto& image : s.images) {
    seeds.push_back(image->seed);
    infotexts.push_back(image->parameters);
    prompts.push_back(prompt);
    negatives.push_back(negative);
  }
  const std::string sampler = sent("sampler_name", "Euler");
  nlohmann::json info = {
      {"prompt", prompt},
      {"all_prompts", prompts},
      {"negative_prompt", negative},
      {"all_negative_prompts", negatives},
      {"seed", o.seed},
      {"all_seeds", seeds},
      {"subseed", -1},
      {"all_subseeds", seeds},
      {"subseed_strength", 0},
      {"width", o.width},
      {"height", o.height},
      {"sampler_name", sampler},
      {"cfg_scale", o.guidance_scale},
      {"steps", o.steps},
      {"batch_size", r.echo.contains("batch_size") && r.echo["batch_size"].is_number_integer()
                         ? r.echo["batch_size"]
                         : nlohmann::json(1)},
      {"restore_faces", false},
      {"face_restoration_model", nullptr},
      {"sd_model_name", r.model},
      {"sd_model_hash", server.models().short_hash(r.model)},
      {"sd_vae_name", nullptr},
      {"sd_vae_hash", nullptr},
      {"seed_resize_from_w", -1},
      {"seed_resize_from_h", -1},
      {"denoising_strength",
       o.init_image ? nlohmann::json(o.strength.value_or(0.75f)) : nlohmann::json(0)},
      {"extra_generation_params",
       o.mask_image ? nlohmann::json{{"Mask blur", o.mask_blur}} : nlohmann::json::object()},
      {"index_of_first_image", 0},
      {"infotexts", infotexts},
      {"styles", nlohmann::json::array()},
      {"job_timestamp", job_timestamp()},
      {"clip_skip", o.clip_skip + 1},
      {"is_using_inpainting_conditioning", false},
      {"version", std::string("diffuse ") + version()},
      {"interrupted", s.status == JobStatus::Cancelled},
      {"warnings", s.warnings}};
  return info.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void generate(Server& server, A1111Route route, const httplib::Request& req,
              httplib::Response& res) {
  const nlohmann::json body = parse_json_object(req.body);
  JobRequest request = parse_a1111_request(body, route, server);
  const bool send_images = body.value("send_images", true);
  std::shared_ptr<Job> job = server.queue().submit(std::move(request));
  const JobSnapshot s = job->wait_until_finished();
  if (s.status == JobStatus::Error) throw HttpError(s.error_is_parameter ? 422 : 500, s.error);
  // Interrupted jobs answer with the images finished before the interrupt, as A1111 does.
  nlohmann::json images = nlohmann::json::array();
  if (send_images)
    for (const auto& i : s.images) images.push_back(base64_encode(i->png));
  send_json(res, {{"images", images},
                  {"parameters", job->request().echo},
                  {"info", info_string(job->request(), s, server)}});
}

nlohmann::json progress_json(Server& server, bool skip_image) {
  std::shared_ptr<Job> job = server.queue().current_or_last();
  nlohmann::json state = {{"skipped", false},   {"interrupted", false}, {"job", ""},
                          {"job_count", 0},     {"job_timestamp", "0"}, {"job_no", 0},
                          {"sampling_step", 0}, {"sampling_steps", 0}};
  nlohmann::json out = {{"progress", 0.0},
                        {"eta_relative", 0.0},
                        {"state", state},
                        {"current_image", nullptr},
                        {"textinfo", nullptr}};
  if (!job || job->finished()) {
    if (job && job->snapshot().status == JobStatus::Cancelled) out["state"]["interrupted"] = true;
    return out;
  }
  const JobSnapshot s = job->snapshot();
  const double run_fraction = s.total_steps > 0 ? double(s.step) / s.total_steps : 0.0;
  const double progress = s.run_count > 0 ? (s.run + run_fraction) / s.run_count : 0.0;
  out["progress"] = progress;
  out["eta_relative"] = progress > 0 ? s.elapsed_s / progress - s.elapsed_s : 0.0;
  out["state"]["job"] = job->id();
  out["state"]["job_count"] = s.run_count;
  out["state"]["job_no"] = s.run;
  out["state"]["sampling_step"] = s.step;
  out["state"]["sampling_steps"] = s.total_steps;
  out["textinfo"] = "step " + std::to_string(s.step) + "/" + std::to_string(s.total_steps);
  if (!skip_image && s.preview_png) out["current_image"] = base64_encode(*s.preview_png);
  return out;
}

nlohmann::json sd_models_json(Server& server) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& e : server.models().entries())
    list.push_back({{"title", server.models().title(e.name)},
                    {"model_name", e.name},
                    {"hash", server.models().short_hash(e.name)},
                    {"sha256", server.models().full_hash(e.name)},
                    {"filename", e.path},
                    {"config", nullptr}});
  return list;
}

nlohmann::json samplers_json() {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : a1111_samplers())
    list.push_back({{"name", s.name},
                    {"aliases", nlohmann::json::array({s.preset})},
                    {"options", s.karras ? nlohmann::json{{"scheduler", "karras"}}
                                         : nlohmann::json::object()}});
  return list;
}

nlohmann::json schedulers_json() {
  return nlohmann::json::array({{{"name", "automatic"},
                                 {"label", "Automatic"},
                                 {"aliases", nullptr},
                                 {"default_rho", -1},
                                 {"need_inner_model", false}},
                                {{"name", "karras"},
                                 {"label", "Karras"},
                                 {"aliases", nullptr},
                                 {"default_rho", 7.0},
                                 {"need_inner_model", false}}});
}

nlohmann::json options_json(Server& server) {
  const std::string current = server.models().current();
  std::lock_guard<std::mutex> lock(server.a1111_options().mutex);
  return {{"sd_model_checkpoint", server.models().title(current)},
          {"sd_checkpoint_hash", server.models().full_hash(current)},
          {"CLIP_stop_at_last_layers", server.a1111_options().clip_stop_at_last_layers},
          {"samples_format", "png"},
          {"sd_vae", "Automatic"},
          {"eta_noise_seed_delta", 0}};
}

void set_options(Server& server, const nlohmann::json& body) {
  JsonFields f(body);
  std::optional<std::string> model = f.optional_string("sd_model_checkpoint");
  std::optional<int64_t> clip = f.optional_integer("CLIP_stop_at_last_layers", 1, 12);
  if (auto fmt = f.optional_string("samples_format"); fmt && *fmt != "png")
    throw invalid_parameter("samples_format: only \"png\" is supported");
  if (auto vae = f.optional_string("sd_vae"); vae && *vae != "Automatic" && *vae != "None")
    throw invalid_parameter("sd_vae: separate VAE files are not supported yet");
  f.accept("eta_noise_seed_delta");
  f.refuse_unknown("options diffuse keeps: sd_model_checkpoint, CLIP_stop_at_last_layers");
  // Applied here at once, and shared with the other fronts through the queue (with --queue).
  if (model) {
    server.models().set_current(*model);
    server.queue().set_shared_setting("sd_model_checkpoint", server.models().current());
  }
  if (clip) {
    {
      std::lock_guard<std::mutex> lock(server.a1111_options().mutex);
      server.a1111_options().clip_stop_at_last_layers = static_cast<int>(*clip);
    }
    server.queue().set_shared_setting("CLIP_stop_at_last_layers", std::to_string(*clip));
  }
}

nlohmann::json png_info_json(Server& server, const nlohmann::json& body) {
  JsonFields f(body);
  const std::string image = f.string("image", "");
  f.refuse_unknown();
  if (image.empty()) throw invalid_parameter("image: a base64 PNG is required");
  const std::vector<uint8_t> bytes = base64_decode(image, "image");
  std::string text;
  try {
    text = png_parameters(bytes.data(), bytes.size(), "image");
  } catch (const FileError& e) {
    throw invalid_parameter(e.what());
  }
  nlohmann::json parameters = nlohmann::json::object();
  if (!text.empty())
    for (const auto& [k, v] : parse_infotext(text)) parameters[k] = v;
  nlohmann::json items = nlohmann::json::object();
  if (!text.empty()) items["parameters"] = text;
  return {{"info", text}, {"items", items}, {"parameters", parameters}};
}

// RAM figures in A1111's /memory shape, from /proc.
nlohmann::json memory_json() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t value = 0, total = 0, available = 0;
  std::string unit;
  while (meminfo >> key >> value >> unit) {
    if (key == "MemTotal:") total = value * 1024;
    if (key == "MemAvailable:") available = value * 1024;
  }
  return {{"ram",
           {{"free", available},
            {"used", total - available},
            {"total", total},
            {"process_peak", process_peak_rss_bytes()}}},
          {"cuda", {{"error", "no CUDA backend in this build"}}}};
}

// A1111's /sdapi/v1/loras: the LoRAs of --lora-dir.
nlohmann::json loras_json(Server& server) {
  nlohmann::json list = nlohmann::json::array();
  const std::string& dir = server.config().lora_dir;
  for (const auto& name : lora_names(dir))
    list.push_back({{"name", name},
                    {"alias", name},
                    {"path", (std::filesystem::path(dir) / (name + ".safetensors")).string()},
                    {"metadata", nlohmann::json::object()}});
  return list;
}

}  // namespace

void add_a1111_routes(Server& server) {
  auto& http = server.http();
  auto& s = server;
  http.Post("/sdapi/v1/txt2img", s.handle([&s](const auto& req, auto& res) {
    generate(s, A1111Route::Txt2Img, req, res);
  }));
  http.Post("/sdapi/v1/img2img", s.handle([&s](const auto& req, auto& res) {
    generate(s, A1111Route::Img2Img, req, res);
  }));
  http.Get("/sdapi/v1/progress", s.handle([&s](const auto& req, auto& res) {
    send_json(res, progress_json(s, req.get_param_value("skip_current_image") == "true"));
  }));
  http.Post("/sdapi/v1/interrupt", s.handle([&s](const auto&, auto& res) {
    if (auto job = s.queue().running()) s.queue().cancel(*job);  // with --queue: on the worker
    send_json(res, nlohmann::json::object());
  }));
  http.Post("/sdapi/v1/skip", s.handle([&s](const auto&, auto& res) {
    if (auto job = s.queue().running()) job->skip();
    send_json(res, nlohmann::json::object());
  }));
  http.Get("/sdapi/v1/options",
           s.handle([&s](const auto&, auto& res) { send_json(res, options_json(s)); }));
  http.Post("/sdapi/v1/options", s.handle([&s](const auto& req, auto& res) {
    set_options(s, parse_json_object(req.body));
    send_json(res, nullptr);
  }));
  http.Get("/sdapi/v1/sd-models",
           s.handle([&s](const auto&, auto& res) { send_json(res, sd_models_json(s)); }));
  http.Get("/sdapi/v1/samplers",
           s.handle([](const auto&, auto& res) { send_json(res, samplers_json()); }));
  http.Get("/sdapi/v1/schedulers",
           s.handle([](const auto&, auto& res) { send_json(res, schedulers_json()); }));
  http.Post("/sdapi/v1/png-info", s.handle([&s](const auto& req, auto& res) {
    send_json(res, png_info_json(s, parse_json_object(req.body)));
  }));
  http.Get("/sdapi/v1/memory",
           s.handle([](const auto&, auto& res) { send_json(res, memory_json()); }));
  // LoRAs (A1111's Lora extension, built in) and the ControlNet extension's lists; the folders
  // are read on every call, so refreshing has nothing to do.
  http.Get("/sdapi/v1/loras",
           s.handle([&s](const auto&, auto& res) { send_json(res, loras_json(s)); }));
  http.Post("/sdapi/v1/refresh-loras",
            s.handle([](const auto&, auto& res) { send_json(res, nullptr); }));
  http.Get("/controlnet/model_list", s.handle([&s](const auto&, auto& res) {
    send_json(res, {{"model_list", controlnet_names(s.config().controlnet_dir)}});
  }));
  http.Get("/controlnet/module_list", s.handle([](const auto&, auto& res) {
    send_json(res, {{"module_list", nlohmann::json::array({"none", "canny"})},
                    {"module_detail", nlohmann::json::object()}});
  }));
}

}  // namespace diffuse::serve
