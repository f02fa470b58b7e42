// Bad input never crashes or stalls the server: malformed and fuzzed requests get a 4xx with a
// one-line JSON message, limits are enforced before work is done, auth and CORS hold, and SIGTERM
// stops a busy server cleanly.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>

#include "common/png_bomb.h"
#include "server_fixture.h"

namespace {

using diffuse::test::TestServer;

TEST(server_robustness, bad_requests_get_a_4xx_naming_the_problem) {
  diffuse::serve::ServerConfig config;
  config.max_body_bytes = 1 << 20;
  TestServer s(config);
  const std::string huge_png =
      diffuse::serve::base64_encode(diffuse::test::png_declaring(16000, 16000));
  struct Case {
    std::string path, body;
    int status;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"/sdapi/v1/txt2img", "{not json", 400, "JSON"},
      {"/sdapi/v1/txt2img", "[1, 2]", 400, "object"},
      {"/sdapi/v1/txt2img", R"({"steps": 0})", 422, "steps"},
      {"/sdapi/v1/txt2img", R"({"steps": "many"})", 422, "steps"},
      {"/sdapi/v1/txt2img", R"({"width": 100})", 422, "width"},
      {"/sdapi/v1/txt2img", R"({"width": 65536, "height": 65536})", 422, "width"},
      {"/sdapi/v1/txt2img", R"({"cfg_scale": 1e999})", 400, "JSON"},
      {"/sdapi/v1/txt2img", R"({"sampler_name": "DPM++ 3M SDE"})", 422, "sampler"},
      {"/sdapi/v1/txt2img", R"({"batch_size": 1000})", 422, "batch_size"},
      {"/sdapi/v1/txt2img", R"({"override_settings": {"sd_model_checkpoint": "nope"}})", 422,
       "nope"},
      {"/sdapi/v1/img2img", R"({"prompt": "x"})", 422, "init_images"},
      {"/sdapi/v1/img2img", R"({"init_images": ["%%%"]})", 422, "base64"},
      {"/sdapi/v1/img2img", R"({"init_images": ["aGVsbG8="]})", 422, "PNG"},
      {"/sdapi/v1/img2img", "{\"init_images\": [\"" + huge_png + "\"]}", 422, "pixels"},
      {"/api/v1/jobs", R"({"prompt": "x", "colour": "red"})", 422, "colour"},
      {"/api/v1/jobs", R"({"model": "missing"})", 422, "missing"},
      {"/api/v1/jobs", R"({"scheduler": "warp-drive", "steps": 1})", 202, ""},
      {"/sdapi/v1/png-info", R"({"image": "aGVsbG8="})", 422, "PNG"},
      {"/sdapi/v1/png-info", R"({})", 422, "image"},
      {"/v1/images/generations", R"({"n": 1})", 422, "prompt"},
      {"/sdapi/v1/nothing", "{}", 404, "no route"},
      {"/api/v1/jobs", std::string(2 << 20, 'x'), 413, "too large"},
  };
  for (const auto& c : cases) {
    auto [status, body] = s.post_raw(c.path, c.body);
    EXPECT_EQ(status, c.status) << c.path << " " << c.body.substr(0, 80);
    if (c.needle.empty()) continue;
    ASSERT_TRUE(body.is_object()) << c.path;
    const std::string message = body["error"];
    EXPECT_NE(message.find(c.needle), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  // An unknown scheduler is the library's ConfigError: the job fails with its message.
  EXPECT_TRUE(s.alive());
}

TEST(server_robustness, fuzzed_bodies_never_get_a_5xx_and_the_server_keeps_serving) {
  TestServer s;
  std::mt19937 rng(1234);
  const std::vector<std::string> paths = {"/sdapi/v1/txt2img",  "/sdapi/v1/img2img",
                                          "/api/v1/jobs",       "/sdapi/v1/options",
                                          "/sdapi/v1/png-info", "/v1/images/generations"};
  const std::string valid =
      R"({"prompt": "a cat", "steps": 2, "width": 64, "height": 64, "seed": 1, "init_images": ["iVBORw0KGgo="]})";
  const std::vector<std::string> type_swaps = {
      "null", "true", "[]", "{}", "\"s\"", "-1", "1e308", "18446744073709551616", "0.5"};
  int checked = 0;
  for (int i = 0; i < 400; ++i) {
    std::string body;
    switch (i % 3) {
      case 0:  // random bytes
        for (int k = 0, n = int(rng() % 200); k < n; ++k) body.push_back(char(rng() % 256));
        break;
      case 1:  // a valid body cut short
        body = valid.substr(0, rng() % valid.size());
        break;
      default: {  // one field's value replaced by a value of another type
        nlohmann::json j = nlohmann::json::parse(valid);
        const char* fields[] = {"prompt", "steps", "width", "height", "seed", "init_images"};
        j[fields[rng() % 6]] = nlohmann::json::parse(type_swaps[rng() % type_swaps.size()]);
        j["steps"] = 1;
        body = j.dump();
      }
    }
    auto [status, reply] = s.post_raw(paths[rng() % paths.size()], body);
    ASSERT_GT(status, 0) << "no response to " << body;
    EXPECT_LT(status, 500) << body << " -> " << reply.dump();
    ++checked;
  }
  EXPECT_EQ(checked, 400);
  EXPECT_TRUE(s.alive());
}

TEST(server_robustness, an_api_key_guards_everything_but_the_app_shell) {
  diffuse::serve::ServerConfig config;
  config.api_key = "s3cret";
  config.cors_origin = "http://localhost:3000";
  TestServer s(config);
  auto c = s.client();
  auto app = c->Get("/");
  ASSERT_TRUE(app);
  EXPECT_EQ(app->status, 200);
  EXPECT_NE(app->body.find("<html"), std::string::npos);
  EXPECT_EQ(c->Get("/health")->status, 200);
  EXPECT_EQ(c->Get("/api/v1/info")->status, 401);
  EXPECT_EQ(c->Get("/sdapi/v1/sd-models")->status, 401);
  EXPECT_EQ(c->Get("/api/v1/info", {{"Authorization", "Bearer wrong!"}})->status, 401);
  auto ok = c->Get("/api/v1/info", {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(ok->status, 200);
  EXPECT_TRUE(nlohmann::json::parse(ok->body)["auth_required"].get<bool>());
  EXPECT_EQ(ok->get_header_value("Access-Control-Allow-Origin"), "http://localhost:3000");
  auto preflight = c->Options("/sdapi/v1/txt2img");
  EXPECT_EQ(preflight->status, 204);
  EXPECT_NE(preflight->get_header_value("Access-Control-Allow-Headers").find("Authorization"),
            std::string::npos);
  auto openapi = c->Get("/openapi.json", {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(nlohmann::json::parse(openapi->body)["openapi"], "3.0.3");
}

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(server_robustness, sigterm_cancels_the_running_job_and_exits_cleanly) {
  const int port = free_port();
  const std::string model = diffuse::test::fixture("models/tiny-sd1");
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl(DIFFUSE_BINARY, DIFFUSE_BINARY, "serve", "--model", model.c_str(), "--port",
          std::to_string(port).c_str(), "--no-access-log", static_cast<char*>(nullptr));
    _exit(127);
  }
  httplib::Client c("127.0.0.1", port);
  bool up = false;
  for (int i = 0; i < 600 && !up; ++i) {
    auto r = c.Get("/health");
    up = r && r->status == 200;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(up);
  auto job = c.Post("/api/v1/jobs", R"({"prompt": "x", "steps": 500, "width": 64, "height": 64})",
                    "application/json");
  ASSERT_TRUE(job);
  ASSERT_EQ(job->status, 202);
  const std::string id = nlohmann::json::parse(job->body)["id"];
  for (int i = 0; i < 500; ++i) {
    auto r = c.Get(("/api/v1/jobs/" + id).c_str());
    if (r && nlohmann::json::parse(r->body)["step"].get<int>() > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = -1;
  for (int i = 0; i < 400; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!WIFEXITED(status)) kill(pid, SIGKILL);
  ASSERT_TRUE(WIFEXITED(status)) << "the server did not exit within 20 s of SIGTERM";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
