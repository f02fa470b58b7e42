// OpenAI-style image generation: POST /v1/images/generations and GET /v1/models, for clients
// written against OpenAI's images API.
#include <ctime>

#include "serve/codec.h"
#include "serve/generation_request.h"
#include "serve/http_error.h"
#include "serve/json_fields.h"
#include "serve/server.h"

namespace diffuse::serve {

namespace {

void parse_size(const std::string& size, GenerateOptions& o) {
  const size_t x = size.find('x');
  try {
    size_t used_w = 0, used_h = 0;
    if (x == std::string::npos) throw std::invalid_argument(size);
    o.width = std::stoi(size.substr(0, x), &used_w);
    o.height = std::stoi(size.substr(x + 1), &used_h);
    if (used_w != x || used_h != size.size() - x - 1) throw std::invalid_argument(size);
  } catch (const std::exception&) {
    throw invalid_parameter("size must be \"WIDTHxHEIGHT\" (e.g. \"512x512\"), got \"" + size +
                            "\"");
  }
}

JobRequest parse_openai_request(const nlohmann::json& body, Server& server,
                                std::string& response_format) {
  JsonFields f(body);
  JobRequest r;
  r.origin = "openai";
  GenerateOptions o;
  r.model = resolve_model(server.models(), f.string("model", ""), "model");
  o.prompt = f.string("prompt", "");
  if (o.prompt.empty()) throw invalid_parameter("prompt is required");
  o.image_count = static_cast<int>(f.integer("n", 1, 1, server.config().max_images));
  if (auto size = f.optional_string("size"); size && *size != "auto") parse_size(*size, o);
  response_format = f.string("response_format", "url");
  if (response_format != "url" && response_format != "b64_json")
    throw invalid_parameter("response_format must be \"url\" or \"b64_json\"");
  // Options of OpenAI's models that have no counterpart here; accepted at their defaults only.
  if (auto q = f.optional_string("quality"); q && *q != "standard" && *q != "auto")
    throw invalid_parameter("quality \"" + *q + "\" is not supported (use \"standard\")");
  if (auto st = f.optional_string("style"); st && *st != "vivid" && *st != "natural")
    throw invalid_parameter("style must be \"vivid\" or \"natural\"");
  f.accept("user");
  o.steps = static_cast<int>(f.integer("steps", 30, 1, 100000));     // diffuse extension
  o.seed = resolve_seed(f.optional_integer("seed", -1, INT64_MAX));  // diffuse extension
  f.refuse_unknown("OpenAI fields: model, prompt, n, size, response_format, quality, style, user");
  check_limits(o, server.config(), {"size", "size", "steps", "n", "strength"});
  r.echo = body;
  r.runs.push_back(std::move(o));
  return r;
}

nlohmann::json models_json(Server& server) {
  nlohmann::json data = nlohmann::json::array();
  for (const auto& e : server.models().entries())
    data.push_back({{"id", e.name}, {"object", "model"}, {"created", 0}, {"owned_by", "diffuse"}});
  return {{"object", "list"}, {"data", data}};
}

std::string base_url(const httplib::Request& req) {
  const std::string host = req.get_header_value("Host");
  return "http://" + (host.empty() ? std::string("127.0.0.1") : host);
}

}  // namespace

void add_openai_routes(Server& server) {
  auto& http = server.http();
  auto& s = server;
  http.Post("/v1/images/generations", s.handle([&s](const auto& req, auto& res) {
    std::string format;
    JobRequest request = parse_openai_request(parse_json_object(req.body), s, format);
    std::shared_ptr<Job> job = s.queue().submit(std::move(request));
    const JobSnapshot snap = job->wait_until_finished();
    if (snap.status == JobStatus::Error)
      throw HttpError(snap.error_is_parameter ? 422 : 500, snap.error);
    if (snap.status == JobStatus::Cancelled) throw HttpError(503, "the job was cancelled");
    nlohmann::json data = nlohmann::json::array();
    for (const auto& image : snap.images) {
      if (format == "b64_json") {
        data.push_back({{"b64_json", base64_encode(image->png)}});
      } else {
        const std::string id = s.images().put(image->png);
        data.push_back({{"url", base_url(req) + "/v1/files/images/" + id + ".png"}});
      }
    }
    send_json(res, {{"created", static_cast<int64_t>(std::time(nullptr))}, {"data", data}});
  }));
  http.Get(R"(/v1/files/images/([0-9a-f]+)\.png)", s.handle([&s](const auto& req, auto& res) {
    auto png = s.images().get(req.matches[1]);
    if (!png) throw not_found("no such image (images are kept for an hour)");
    res.set_content(reinterpret_cast<const char*>(png->data()), png->size(), "image/png");
  }));
  http.Get("/v1/models",
           s.handle([&s](const auto&, auto& res) { send_json(res, models_json(s)); }));
}

}  // namespace diffuse::serve
