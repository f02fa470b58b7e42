// diffuse's job API (queue, events, cancel) and the OpenAI routes.
#include <future>

#include "server_fixture.h"

namespace {

using diffuse::test::decode_b64_png;
using diffuse::test::TestServer;

struct Event {
  std::string name;
  nlohmann::json data;
};

// Reads a job's server-sent events until the stream closes.
std::vector<Event> read_events(const TestServer& s, const std::string& id) {
  std::string text;
  auto r =
      s.client()->Get(("/api/v1/jobs/" + id + "/events").c_str(), [&](const char* data, size_t n) {
        text.append(data, n);
        return true;
      });
  std::vector<Event> events;
  if (!r || r->status != 200) return events;
  size_t pos = 0;
  while ((pos = text.find("event: ", pos)) != std::string::npos) {
    const size_t nl = text.find('\n', pos);
    const size_t data_at = text.find("data: ", nl);
    const size_t end = text.find("\n\n", data_at);
    events.push_back({text.substr(pos + 7, nl - pos - 7),
                      nlohmann::json::parse(text.substr(data_at + 6, end - data_at - 6))});
    pos = end;
  }
  return events;
}

TEST(jobs_api, a_job_streams_its_steps_with_previews_then_its_images) {
  TestServer s;
  auto [status, created] = s.post("/api/v1/jobs", {{"prompt", "a cat"},
                                                   {"steps", 5},
                                                   {"width", 64},
                                                   {"height", 64},
                                                   {"seed", 11},
                                                   {"scheduler", "euler-a"}});
  ASSERT_EQ(status, 202) << created.dump();
  const std::string id = created["id"];
  const std::vector<Event> events = read_events(s, id);
  ASSERT_FALSE(events.empty());
  int steps = 0;
  for (const auto& e : events)
    if (e.name == "step") {
      ++steps;
      EXPECT_EQ(e.data["total_steps"], 5);
      EXPECT_FALSE(decode_b64_png(e.data["preview_png_base64"]).rgb.empty());
    }
  EXPECT_GE(steps, 1);  // a reader may miss intermediate steps, never the last state
  ASSERT_EQ(events.back().name, "done");
  EXPECT_EQ(events.back().data["images"].size(), 1u);

  auto [st, job] = s.get("/api/v1/jobs/" + id);
  ASSERT_EQ(st, 200);
  EXPECT_EQ(job["status"], "done");
  EXPECT_EQ(job["seed"], 11);
  EXPECT_EQ(job["step"], 5);
  const diffuse::Image image = decode_b64_png(job["images"][0]["png_base64"]);
  EXPECT_EQ(image.width, 64);
  EXPECT_NE(job["images"][0]["parameters"].get<std::string>().find("Sampler: Euler a"),
            std::string::npos);
  EXPECT_EQ(s.get("/api/v1/jobs/j0-nope").first, 404);
}

TEST(jobs_api, the_queue_is_bounded_and_jobs_cancel) {
  diffuse::serve::ServerConfig config;
  config.max_queue = 2;
  TestServer s(config);
  const nlohmann::json slow = {{"prompt", "x"}, {"steps", 500}, {"width", 64}, {"height", 64}};
  std::vector<std::string> ids;
  auto [st0, first] = s.post("/api/v1/jobs", slow);
  ASSERT_EQ(st0, 202);
  ids.push_back(first["id"]);
  // Wait until the first job runs, so the next two are the ones waiting.
  for (int i = 0; i < 1000 && s.get("/api/v1/jobs/" + ids[0]).second["status"] != "running"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  for (int i = 0; i < 2; ++i) {
    auto [st, j] = s.post("/api/v1/jobs", slow);
    ASSERT_EQ(st, 202) << j.dump();
    EXPECT_EQ(j["queue_position"], i);
    ids.push_back(j["id"]);
  }
  auto r = s.client()->Post("/api/v1/jobs", slow.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_FALSE(r->get_header_value("Retry-After").empty());

  // Cancelling a waiting job frees its place at once; the running one stops within a step.
  auto del = s.client()->Delete(("/api/v1/jobs/" + ids[2]).c_str());
  ASSERT_TRUE(del);
  EXPECT_EQ(nlohmann::json::parse(del->body)["status"], "cancelled");
  EXPECT_EQ(s.post("/api/v1/jobs", slow).first, 202);
  for (const auto& id : ids) s.client()->Delete(("/api/v1/jobs/" + id).c_str());
  EXPECT_EQ(s.get("/api/v1/jobs/" + ids[0]).second["status"], "cancelled");
  EXPECT_TRUE(s.alive());
}

TEST(jobs_api, a_client_that_disconnects_does_not_stall_the_queue) {
  TestServer s;
  {
    auto impatient = s.client(/*read_timeout_s=*/1);
    auto r = impatient->Post(
        "/sdapi/v1/txt2img",
        // Long enough to outlast the 1 s timeout on a fast machine (60 steps took < 1 s).
        nlohmann::json{{"prompt", "x"}, {"steps", 300}, {"width", 64}, {"height", 64}}.dump(),
        "application/json");
    EXPECT_FALSE(r);  // timed out and hung up
  }
  auto [status, r] =
      s.post("/sdapi/v1/txt2img", {{"prompt", "y"}, {"steps", 2}, {"width", 64}, {"height", 64}});
  EXPECT_EQ(status, 200);
  EXPECT_EQ(r["images"].size(), 1u);
}

TEST(openai_api, generations_as_url_and_as_base64) {
  TestServer s;
  auto [st, b64] = s.post("/v1/images/generations", {{"prompt", "a cat"},
                                                     {"n", 2},
                                                     {"size", "64x64"},
                                                     {"steps", 2},
                                                     {"response_format", "b64_json"}});
  ASSERT_EQ(st, 200) << b64.dump();
  ASSERT_EQ(b64["data"].size(), 2u);
  EXPECT_EQ(decode_b64_png(b64["data"][1]["b64_json"]).height, 64);

  auto [st2, url] =
      s.post("/v1/images/generations", {{"prompt", "a cat"}, {"size", "64x64"}, {"steps", 2}});
  ASSERT_EQ(st2, 200) << url.dump();
  const std::string link = url["data"][0]["url"];
  const std::string path = link.substr(link.find("/v1/files/"));
  auto image = s.client()->Get(path.c_str());
  ASSERT_TRUE(image);
  EXPECT_EQ(image->status, 200);
  EXPECT_EQ(image->get_header_value("Content-Type"), "image/png");

  auto models = s.get("/v1/models").second;
  EXPECT_EQ(models["data"][0]["id"], "tiny-sd1");
  EXPECT_EQ(s.post("/v1/images/generations", {{"prompt", "x"}, {"size", "big"}}).first, 422);
  EXPECT_EQ(s.post("/v1/images/generations", {{"prompt", "x"}, {"quality", "hd"}}).first, 422);
}

}  // namespace
