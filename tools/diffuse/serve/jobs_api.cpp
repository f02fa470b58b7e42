// diffuse's own job API: POST /api/v1/jobs queues a generation with the library's option names;
// GET reads it, /events streams it as server-sent events, DELETE cancels it.
#include <thread>

#include "serve/codec.h"
#include "serve/extra_models.h"
#include "serve/generation_request.h"
#include "serve/http_error.h"
#include "serve/json_fields.h"
#include "serve/server.h"

namespace diffuse::serve {

namespace {

// `loras`: [{name, scale}], names resolved against --lora-dir.
void read_loras(JsonFields& f, GenerateOptions& o, const ServerConfig& config) {
  const nlohmann::json* loras = f.raw("loras");
  if (!loras) return;
  if (!loras->is_array()) throw invalid_parameter("loras must be a list of {name, scale}");
  for (size_t i = 0; i < loras->size(); ++i) {
    const std::string at = "loras[" + std::to_string(i) + "]";
    if (!(*loras)[i].is_object()) throw invalid_parameter(at + " must be an object {name, scale}");
    JsonFields l((*loras)[i], at + ".");
    const std::string name = l.string("name", "");
    const float scale = static_cast<float>(l.number("scale", 1.0, -100, 100));
    l.refuse_unknown("a LoRA is {name, scale}");
    o.loras.push_back({resolve_lora(config, name, at + ".name"), scale});
  }
}

// `controlnets`: [{model, image, scale, start, end}], models resolved against --controlnet-dir.
void read_controlnets(JsonFields& f, GenerateOptions& o, const ServerConfig& config) {
  const nlohmann::json* nets = f.raw("controlnets");
  if (nets) {
    if (!nets->is_array())
      throw invalid_parameter("controlnets must be a list of {model, image, scale, start, end}");
    for (size_t i = 0; i < nets->size(); ++i) {
      const std::string at = "controlnets[" + std::to_string(i) + "]";
      if (!(*nets)[i].is_object())
        throw invalid_parameter(at + " must be an object {model, image, scale, start, end}");
      JsonFields c((*nets)[i], at + ".");
      ControlNetSpec spec;
      spec.model = resolve_controlnet(config, c.string("model", ""), at + ".model");
      const std::string image = c.string("image", "");
      if (image.empty()) throw invalid_parameter(at + ".image: a base64 PNG is required");
      spec.image = decode_image_field(image, at + ".image", config);
      spec.scale = static_cast<float>(c.number("scale", 1.0, 0, 100));
      spec.start = c.number("start", 0.0, 0, 1);
      spec.end = c.number("end", 1.0, 0, 1);
      if (!(spec.start < spec.end)) throw invalid_parameter(at + ".start must be below its end");
      spec.preprocessor = c.string("preprocessor", "none");
      if (spec.preprocessor != "none" && spec.preprocessor != "canny")
        throw invalid_parameter(at + ".preprocessor: \"" + spec.preprocessor +
                                "\" is not one of none, canny");
      spec.low_threshold = static_cast<float>(c.number("low_threshold", 100, 0, 10000));
      spec.high_threshold = static_cast<float>(c.number("high_threshold", 200, 0, 10000));
      c.refuse_unknown(
          "a ControlNet is {model, image, scale, start, end, preprocessor, low_threshold, "
          "high_threshold}");
      o.controlnets.push_back(std::move(spec));
    }
  }
  o.control_guess_mode = f.boolean("control_guess_mode", false);
  if (o.control_guess_mode && o.controlnets.empty())
    throw invalid_parameter("control_guess_mode needs controlnets");
}

JobRequest parse_job_request(const nlohmann::json& body, Server& server) {
  JsonFields f(body);
  JobRequest r;
  r.origin = "api";
  r.model = resolve_model(server.models(), f.string("model", ""), "model");
  GenerateOptions o = read_generation_fields(f, 30);
  o.seed = resolve_seed(f.optional_integer("seed", -1, INT64_MAX));
  o.preview = f.boolean("preview", true);
  if (auto init = f.optional_string("init_image"); init && !init->empty())
    o.init_image = decode_image_field(*init, "init_image", server.config());
  if (f.has("strength")) o.strength = static_cast<float>(f.number("strength", 0.8, 0, 1));
  if (auto mask = f.optional_string("mask_image"); mask && !mask->empty()) {
    if (!o.init_image)
      throw invalid_parameter("mask_image needs init_image (the image to inpaint)");
    o.mask_image = decode_image_field(*mask, "mask_image", server.config());
  }
  o.mask_blur = static_cast<int>(f.integer("mask_blur", 0, 0, 256));
  if (o.mask_blur != 0 && !o.mask_image) throw invalid_parameter("mask_blur needs mask_image");
  if (f.has("masked_content")) {
    if (!o.mask_image) throw invalid_parameter("masked_content needs mask_image");
    o.masked_content = f.string("masked_content", "original");
    if (o.masked_content != "original" && o.masked_content != "fill" &&
        o.masked_content != "latent-noise" && o.masked_content != "latent-nothing")
      throw invalid_parameter("masked_content \"" + o.masked_content +
                              "\" is not one of original, fill, latent-noise, latent-nothing");
  }
  if (f.has("mask_crop")) {
    if (!o.mask_image) throw invalid_parameter("mask_crop needs mask_image");
    o.mask_crop = static_cast<int>(f.integer("mask_crop", 0, 0, 16384));
  }
  read_loras(f, o, server.config());
  apply_prompt_loras(o, server.config(), true, r.warnings, "prompt", "negative_prompt");
  read_controlnets(f, o, server.config());
  f.refuse_unknown("see /openapi.json for the fields of POST /api/v1/jobs");
  check_limits(o, server.config(), {});
  check_queue_support(o, server.config());
  r.echo = body;
  // Images are large, and the client has them.
  r.echo.erase("init_image");
  r.echo.erase("mask_image");
  if (r.echo.contains("controlnets") && r.echo["controlnets"].is_array())
    for (auto& c : r.echo["controlnets"])
      if (c.is_object()) c.erase("image");
  r.echo["seed"] = o.seed;
  r.echo["model"] = r.model;
  r.runs.push_back(std::move(o));
  return r;
}

nlohmann::json job_json(const Job& job, const JobSnapshot& s, Server& server) {
  nlohmann::json images = nlohmann::json::array();
  for (const auto& i : s.images)
    images.push_back({{"png_base64", base64_encode(i->png)},
                      {"parameters", i->parameters},
                      {"seed", i->seed},
                      {"width", i->width},
                      {"height", i->height}});
  return {{"id", job.id()},
          {"status", to_string(s.status)},
          {"queue_position", server.queue().position(job)},
          {"step", s.step},
          {"total_steps", s.total_steps},
          {"model", s.model},
          {"seed", job.request().runs.empty() ? 0 : job.request().runs[0].seed},
          {"elapsed_s", s.elapsed_s},
          {"images", images},
          {"warnings", s.warnings},
          {"error", s.error.empty() ? nlohmann::json() : nlohmann::json(s.error)},
          {"request", job.request().echo}};
}

std::shared_ptr<Job> job_from_path(Server& server, const httplib::Request& req) {
  std::shared_ptr<Job> job = server.queue().find(req.matches[1]);
  if (!job)
    throw not_found("no job " + std::string(req.matches[1]) +
                    " (finished jobs are kept "
                    "for an hour)");
  return job;
}

std::string sse(const std::string& event, const nlohmann::json& data) {
  return "event: " + event +
         "\ndata: " + data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
}

// The events a reader has not seen yet, given what it saw last.
struct StreamState {
  bool sent_queued = false, sent_started = false;
  int queue_position = -2;
  int step = -1, run = -1;
  uint64_t version = 0;
  bool first = true;  // the first call reports the current state without waiting
};

std::string next_events(Server& server, Job& job, const JobSnapshot& s, StreamState& st,
                        bool& finished) {
  std::string out;
  const int position = server.queue().position(job);
  if (s.status == JobStatus::Queued && position != st.queue_position) {
    out += sse("queued", {{"queue_position", position}});
    st.queue_position = position;
  }
  if (s.status != JobStatus::Queued && !st.sent_started && s.status == JobStatus::Running) {
    out += sse("started", {{"total_steps", s.total_steps}, {"run_count", s.run_count}});
    st.sent_started = true;
  }
  if (s.status == JobStatus::Running && s.step > 0 && (s.step != st.step || s.run != st.run)) {
    nlohmann::json step = {{"step", s.step},
                           {"total_steps", s.total_steps},
                           {"run", s.run},
                           {"run_count", s.run_count},
                           {"elapsed_s", s.elapsed_s}};
    if (s.preview_png) step["preview_png_base64"] = base64_encode(*s.preview_png);
    out += sse("step", step);
    st.step = s.step;
    st.run = s.run;
  }
  finished = true;
  if (s.status == JobStatus::Done)
    out += sse("done", job_json(job, s, server));
  else if (s.status == JobStatus::Error)
    out += sse("error", {{"error", s.error}});
  else if (s.status == JobStatus::Cancelled)
    out += sse("cancelled", nlohmann::json::object());
  else
    finished = false;
  return out;
}

void stream_events(Server& server, std::shared_ptr<Job> job, httplib::Response& res) {
  auto state = std::make_shared<StreamState>();
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // nginx: do not buffer the stream
  res.set_chunked_content_provider(
      "text/event-stream", [&server, job, state](size_t, httplib::DataSink& sink) {
        const JobSnapshot s = state->first
                                  ? job->snapshot()
                                  : job->wait_for_change(state->version, std::chrono::seconds(15));
        bool finished = false;
        std::string text;
        if (!state->first && s.version == state->version && !job->finished()) {
          text = ": keep-alive\n\n";  // also finds a client that went away
        } else {
          state->first = false;
          state->version = s.version;
          text = next_events(server, *job, s, *state, finished);
        }
        if (!text.empty() && !sink.write(text.data(), text.size())) return false;
        if (finished) sink.done();
        return true;
      });
}

}  // namespace

void add_job_routes(Server& server) {
  auto& http = server.http();
  http.Post("/api/v1/jobs", server.handle([&server](const auto& req, auto& res) {
    JobRequest request = parse_job_request(parse_json_object(req.body), server);
    std::shared_ptr<Job> job = server.queue().submit(std::move(request));
    res.set_header("Location", "/api/v1/jobs/" + job->id());
    send_json(res,
              {{"id", job->id()},
               {"status", to_string(job->snapshot().status)},
               {"queue_position", server.queue().position(*job)}},
              202);
  }));
  http.Get(R"(/api/v1/jobs/([A-Za-z0-9-]+))", server.handle([&server](const auto& req, auto& res) {
    std::shared_ptr<Job> job = job_from_path(server, req);
    send_json(res, job_json(*job, job->snapshot(), server));
  }));
  http.Get(R"(/api/v1/jobs/([A-Za-z0-9-]+)/events)",
           server.handle([&server](const auto& req, auto& res) {
             stream_events(server, job_from_path(server, req), res);
           }));
  http.Delete(R"(/api/v1/jobs/([A-Za-z0-9-]+))",
              server.handle([&server](const auto& req, auto& res) {
                std::shared_ptr<Job> job = job_from_path(server, req);
                if (!job->finished()) server.queue().cancel(*job);
                // A running job stops at the end of its current step.
                JobSnapshot s = job->snapshot();
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
                while (!job->finished() && std::chrono::steady_clock::now() < deadline)
                  s = job->wait_for_change(s.version, std::chrono::seconds(1));
                s = job->snapshot();
                send_json(res, {{"id", job->id()}, {"status", to_string(s.status)}});
              }));
}

}  // namespace diffuse::serve
