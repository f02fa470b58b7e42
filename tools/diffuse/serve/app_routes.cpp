// The web app's files, the health check, /api/v1/info (what the app needs to draw its form) and
// the OpenAPI document.
#include "diffuse/diffuse.hpp"
#include "serve/a1111_params.h"
#include "serve/assets.h"
#include "serve/extra_models.h"
#include "serve/http_error.h"
#include "serve/server.h"

namespace diffuse::serve {

namespace {

nlohmann::json model_json(Server& server, const ModelEntry& e) {
  nlohmann::json m = {{"name", e.name},
                      {"title", server.models().title(e.name)},
                      {"single_file", e.single_file},
                      {"loaded", false},
                      {"family", nullptr},
                      {"default_width", nullptr},
                      {"default_height", nullptr},
                      {"scheduler", nullptr}};
  if (auto info = server.models().loaded_info(e.name)) {
    m["loaded"] = true;
    m["family"] = info->family;
    m["default_width"] = info->default_width;
    m["default_height"] = info->default_height;
    m["scheduler"] = info->scheduler_class;
  }
  return m;
}

// The scheduler presets with the names A1111 users know them by.
nlohmann::json schedulers_json() {
  nlohmann::json list = nlohmann::json::array({{{"name", ""}, {"label", "Model default"}}});
  for (const auto& name : scheduler_names()) {
    if (name.find("Scheduler") != std::string::npos) continue;  // diffusers class names
    list.push_back({{"name", name}, {"label", a1111_label(name)}});
  }
  return list;
}

nlohmann::json info_json(Server& server) {
  nlohmann::json models = nlohmann::json::array();
  for (const auto& e : server.models().entries()) models.push_back(model_json(server, e));
  const ServerConfig& c = server.config();
  uint64_t max_side = 8;
  while ((max_side + 8) * (max_side + 8) <= c.max_pixels) max_side += 8;
  const std::optional<ModelInfo> current = server.models().loaded_info(server.models().current());
  return {{"version", version()},
          {"backend", current ? nlohmann::json(current->backend) : nlohmann::json()},
          {"threads", current ? nlohmann::json(current->threads) : nlohmann::json()},
          {"models", models},
          {"current_model", server.models().current()},
          {"schedulers", schedulers_json()},
          {"loras", lora_names(c.lora_dir)},
          {"controlnets", controlnet_names(c.controlnet_dir)},
          {"limits",
           {{"max_width", max_side},
            {"max_height", max_side},
            {"max_pixels", c.max_pixels},
            {"max_steps", c.max_steps},
            {"max_images", c.max_images},
            {"max_queue", c.max_queue}}},
          {"auth_required", !c.api_key.empty()}};
}

void serve_asset(const std::string& path, httplib::Response& res) {
  const EmbeddedAsset* a = find_asset(path);
  if (!a) throw not_found("no file " + path);
  res.set_header("Cache-Control", "no-cache");
  res.set_content(reinterpret_cast<const char*>(a->data), a->size, a->content_type);
}

}  // namespace

void add_app_routes(Server& server) {
  auto& http = server.http();
  http.Get("/", server.handle([](const auto&, auto& res) { serve_asset("/index.html", res); }));
  http.Get(R"(/(index\.html|app\.js|app\.css|favicon\.svg|openapi\.json))",
           server.handle([](const auto& req, auto& res) { serve_asset(req.path, res); }));
  http.Get("/health", server.handle([&server](const auto&, auto& res) {
    send_json(res, {{"status", "ok"},
                    {"queue", server.queue().waiting()},
                    {"running", server.queue().running() != nullptr}});
  }));
  http.Get("/api/v1/info",
           server.handle([&server](const auto&, auto& res) { send_json(res, info_json(server)); }));
}

}  // namespace diffuse::serve
