// Scale-out over Redis Streams (docs/SCALE-OUT.md): real redis-server, `diffuse worker` and
// `diffuse batch` processes on the tiny model. Every image must equal the library's (and so
// `diffuse generate`'s) for the same parameters, whatever happens to workers and to Redis.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "diffuse/diffuse.hpp"
#include "serve/queue_fixture.h"
#include "serve/queue_job.h"
#include "serve/server_fixture.h"

namespace fs = std::filesystem;

namespace diffuse::test {

namespace {

std::string job_line(const std::string& id, const std::string& prompt, int steps, int seed) {
  return nlohmann::json{
      {"model", "tiny-sd1"}, {"id", id},    {"prompt", prompt}, {"steps", steps},
      {"seed", seed},        {"width", 64}, {"height", 64},     {"guidance_scale", 7.5}}
      .dump();
}

std::vector<uint8_t> library_pixels(const std::string& prompt, int steps, int seed,
                                    const std::string& scheduler = "") {
  // One thread, as the workers run here: the reductions, and so the last bits, follow the
  // thread count.
  static std::unique_ptr<Pipeline> pipe = [] {
    LoadOptions lo;
    lo.threads = 1;
    return Pipeline::load(fixture("models/tiny-sd1"), lo);
  }();
  GenerateOptions o;
  o.prompt = prompt;
  o.steps = steps;
  o.seed = static_cast<uint64_t>(seed);
  o.width = o.height = 64;
  o.scheduler = scheduler;
  return pipe->generate(o).images.at(0).to_rgb8();
}

std::string get_text(const TestServer& s, const std::string& path) {
  auto r = s.client()->Get(path.c_str());
  return r && r->status == 200 ? r->body : std::string();
}

std::vector<uint8_t> png_pixels(const std::string& path) {
  return load_png(path).to_rgb8();
}

int64_t stat(QueueTest& t, const char* counter) {
  const std::string v = t.redis({"HGET", "diffuse:stats", counter}).str;
  return v.empty() ? 0 : std::stoll(v);
}

}  // namespace

using scale_out = QueueTest;

int64_t pending(QueueTest& t) {
  return t.redis({"XPENDING", "diffuse:jobs:tiny-sd1", "diffuse-workers"})[0].integer;
}

TEST_F(scale_out, three_workers_and_a_front_complete_thirty_jobs_equal_to_generate) {
  start_redis();
  for (const char* name : {"w1", "w2", "w3"}) start_worker(name);
  serve::ServerConfig config;
  config.queue_url = url();
  config.max_queue = 64;  // the batch's twenty jobs count against a front's queue limit too
  TestServer front(config);
  const auto prompt = [](int i) { return "prompt " + std::to_string(i % 7); };
  const auto steps = [](int i) { return 2 + i % 3; };
  // Twenty jobs from a file, ten through the front's job API, all at once.
  std::vector<std::string> lines;
  for (int i = 0; i < 20; ++i)
    lines.push_back(job_line("job" + std::to_string(i), prompt(i), steps(i), 100 + i));
  auto batch = start_batch("twenty", lines, "out");
  std::vector<std::string> front_ids;
  for (int i = 20; i < 30; ++i) {
    const auto [status, queued] = front.post("/api/v1/jobs", {{"model", "tiny-sd1"},
                                                              {"prompt", prompt(i)},
                                                              {"steps", steps(i)},
                                                              {"seed", 100 + i},
                                                              {"width", 64},
                                                              {"height", 64},
                                                              {"guidance_scale", 7.5}});
    ASSERT_EQ(status, 202) << queued.dump();
    front_ids.push_back(queued["id"]);
  }
  ASSERT_EQ(batch->wait(std::chrono::seconds(240)), 0) << batch->output();
  for (int i = 0; i < 20; ++i) {
    const std::string file = path("out/job" + std::to_string(i) + ".png");
    ASSERT_TRUE(fs::exists(file)) << file;
    EXPECT_EQ(png_pixels(file), library_pixels(prompt(i), steps(i), 100 + i)) << file;
  }
  for (int i = 20; i < 30; ++i) {
    const nlohmann::json job = wait_for_job(front, front_ids[static_cast<size_t>(i - 20)]);
    ASSERT_EQ(job.value("status", ""), "done") << job.dump();
    EXPECT_EQ(decode_b64_png(job["images"][0]["png_base64"]).to_rgb8(),
              library_pixels(prompt(i), steps(i), 100 + i));
  }
  // And the same as the CLI's own `diffuse generate` for one of them.
  Child generate({DIFFUSE_BINARY, "generate", "--model", fixture("models/tiny-sd1"), "--prompt",
                  prompt(10), "--steps", std::to_string(steps(10)), "--seed", "110", "-W", "64",
                  "-H", "64", "--threads", "1", "-o", path("generate.png")},
                 path("generate.log"));
  ASSERT_EQ(generate.wait(), 0) << generate.output();
  EXPECT_EQ(png_pixels(path("generate.png")), png_pixels(path("out/job10.png")));
  EXPECT_EQ(stat(*this, "done"), 30);
  EXPECT_EQ(pending(*this), 0);
  // A rerun finds every file and enqueues nothing.
  auto rerun = start_batch("twenty", lines, "out");
  ASSERT_EQ(rerun->wait(), 0) << rerun->output();
  EXPECT_NE(rerun->output().find("20 already in"), std::string::npos) << rerun->output();
  EXPECT_EQ(redis({"XLEN", "diffuse:jobs:tiny-sd1"}).integer, 30);
}

TEST_F(scale_out, a_job_of_a_killed_worker_is_reclaimed_and_completed_once) {
  start_redis();
  Child& doomed = start_worker("doomed", {"--claim-idle-ms", "800"});
  auto batch = start_batch("long", {job_line("long", "a long job", 60, 5)}, "out");
  ASSERT_TRUE(eventually([&] {
    const auto s = redis({"HMGET", "diffuse:job:long", "status", "step"});
    return s[0].str == "running" && !s[1].str.empty() && std::stoi(s[1].str) >= 2;
  })) << doomed.output();
  doomed.kill(SIGKILL);
  ASSERT_EQ(doomed.wait(), 128 + SIGKILL);
  start_worker("rescuer", {"--claim-idle-ms", "800"});
  ASSERT_EQ(batch->wait(std::chrono::seconds(120)), 0) << batch->output();
  EXPECT_EQ(redis({"HGET", "diffuse:job:long", "worker"}).str, "rescuer");
  EXPECT_EQ(redis({"HGET", "diffuse:job:long", "attempt"}).str, "2");
  EXPECT_EQ(stat(*this, "done"), 1);  // exactly one result stored and acknowledged
  EXPECT_EQ(pending(*this), 0);
  EXPECT_EQ(redis({"XLEN", "diffuse:dead"}).integer, 0);
  EXPECT_EQ(png_pixels(path("out/long.png")), library_pixels("a long job", 60, 5));
}

TEST_F(scale_out, a_job_delivered_more_than_max_attempts_times_goes_to_dead_letters) {
  start_redis();
  Child& doomed = start_worker("doomed", {"--claim-idle-ms", "300", "--max-attempts", "1"});
  auto batch = start_batch("long", {job_line("long", "cursed", 60, 6)}, "out");
  ASSERT_TRUE(eventually([&] {
    return redis({"HGET", "diffuse:job:long", "status"}).str == "running";
  })) << doomed.output();
  doomed.kill(SIGKILL);
  doomed.wait();
  Child& next = start_worker("next", {"--claim-idle-ms", "300", "--max-attempts", "1"});
  EXPECT_EQ(batch->wait(std::chrono::seconds(60)), 1) << batch->output();
  EXPECT_NE(batch->output().find("job long: gave up after 1 attempts"), std::string::npos)
      << batch->output();
  ASSERT_EQ(redis({"XLEN", "diffuse:dead"}).integer, 1) << next.output();
  const serve::RedisValue dead = redis({"XRANGE", "diffuse:dead", "-", "+"});
  EXPECT_EQ(serve::field_of(dead[0][1], "id"), "long");
  EXPECT_EQ(serve::field_of(dead[0][1], "deliveries"), "2");
  EXPECT_EQ(pending(*this), 0);
  EXPECT_TRUE(next.running());
}

TEST_F(scale_out, sigterm_hands_the_running_job_back_at_once_and_exits_zero) {
  start_redis();
  Child& leaving = start_worker("leaving");
  auto batch = start_batch("long", {job_line("long", "handed back", 60, 8)}, "out");
  ASSERT_TRUE(eventually([&] {
    const auto s = redis({"HMGET", "diffuse:job:long", "status", "step"});
    return s[0].str == "running" && !s[1].str.empty() && std::stoi(s[1].str) >= 2;
  })) << leaving.output();
  leaving.kill(SIGTERM);
  EXPECT_EQ(leaving.wait(std::chrono::seconds(20)), 0) << leaving.output();
  EXPECT_NE(leaving.output().find("handed back"), std::string::npos) << leaving.output();
  // The default --claim-idle-ms is a minute: the next worker takes the job from the stream.
  start_worker("next");
  ASSERT_EQ(batch->wait(std::chrono::seconds(60)), 0) << batch->output();
  EXPECT_EQ(redis({"HGET", "diffuse:job:long", "worker"}).str, "next");
  EXPECT_EQ(stat(*this, "done"), 1);
  EXPECT_EQ(pending(*this), 0);
  EXPECT_EQ(png_pixels(path("out/long.png")), library_pixels("handed back", 60, 8));
}

TEST_F(scale_out, no_acknowledged_job_is_lost_when_redis_restarts_with_aof) {
  start_redis(/*aof=*/true);
  start_worker("w1");
  std::vector<std::string> first, second;
  for (int i = 0; i < 4; ++i) first.push_back(job_line("a" + std::to_string(i), "first", 2, i));
  for (int i = 0; i < 4; ++i) second.push_back(job_line("b" + std::to_string(i), "second", 2, i));
  auto batch = start_batch("first", first, "out1");
  ASSERT_EQ(batch->wait(), 0) << batch->output();
  redis_->kill(SIGKILL);  // no clean shutdown: only what the AOF has on disk survives
  redis_->wait();
  start_redis(/*aof=*/true);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(redis({"HGET", "diffuse:job:a" + std::to_string(i), "status"}).str, "done");
  EXPECT_EQ(stat(*this, "done"), 4);
  auto after = start_batch("second", second, "out2");
  ASSERT_EQ(after->wait(), 0) << after->output() << workers_[0]->output();
  // The first batch again, into a new folder: answered from the stored results, nothing rerun.
  auto again = start_batch("first", first, "out3");
  ASSERT_EQ(again->wait(), 0) << again->output();
  EXPECT_EQ(stat(*this, "done"), 8);
  EXPECT_EQ(png_pixels(path("out3/a1.png")), library_pixels("first", 2, 1));
  EXPECT_EQ(png_pixels(path("out2/b2.png")), library_pixels("second", 2, 2));
  EXPECT_NE(workers_[0]->output().find("connected to"), std::string::npos);
}

TEST_F(scale_out, a_job_running_while_redis_goes_down_is_stored_once_it_is_back) {
  start_redis(/*aof=*/true);
  Child& worker = start_worker("w1");
  auto batch = start_batch("long", {job_line("long", "outage", 60, 4)}, "out");
  ASSERT_TRUE(eventually([&] {
    const auto s = redis({"HMGET", "diffuse:job:long", "status", "step"});
    return s[0].str == "running" && !s[1].str.empty() && std::stoi(s[1].str) >= 2;
  })) << worker.output();
  redis_->kill(SIGKILL);
  redis_->wait();
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  start_redis(/*aof=*/true);
  ASSERT_EQ(batch->wait(std::chrono::seconds(120)), 0) << batch->output() << worker.output();
  EXPECT_TRUE(worker.running());
  EXPECT_EQ(stat(*this, "done"), 1);
  EXPECT_EQ(pending(*this), 0);
  EXPECT_EQ(png_pixels(path("out/long.png")), library_pixels("outage", 60, 4));
}

TEST_F(scale_out, malformed_jobs_go_to_the_dead_letter_stream_and_the_worker_goes_on) {
  start_redis();
  const std::string stream = "diffuse:jobs:tiny-sd1";
  redis({"XADD", stream, "*", "id", "bad-json", "job", "{\"model\": \"tiny-sd1\", "});
  redis({"XADD", stream, "*", "id", "unknown-key", "job",
         R"({"model": "tiny-sd1", "prompt": "x", "colour": "red"})"});
  redis({"XADD", stream, "*", "id", "unknown-model", "job", R"({"model": "sd99", "id": "m"})"});
  redis({"XADD", stream, "*", "nothing", "here"});
  Child& worker = start_worker("w1");
  auto batch = start_batch("good", {job_line("good", "fine", 2, 3)}, "out");
  ASSERT_EQ(batch->wait(), 0) << batch->output() << worker.output();
  ASSERT_EQ(redis({"XLEN", "diffuse:dead"}).integer, 4);
  const serve::RedisValue dead = redis({"XRANGE", "diffuse:dead", "-", "+"});
  const std::vector<std::string> expected = {"not valid JSON", "unknown field colour",
                                             "unknown model \"sd99\"", "no `job` field"};
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NE(serve::field_of(dead[i][1], "error").find(expected[i]), std::string::npos)
        << serve::field_of(dead[i][1], "error");
  EXPECT_EQ(redis({"HGET", "diffuse:job:m", "status"}).str, "error");
  EXPECT_TRUE(worker.running());
  EXPECT_EQ(pending(*this), 0);
  worker.kill(SIGTERM);
  EXPECT_EQ(worker.wait(std::chrono::seconds(20)), 0) << worker.output();
}

TEST_F(scale_out, a_worker_started_before_redis_retries_until_it_is_up) {
  Child& worker = start_worker("early");
  ASSERT_TRUE(eventually([&] { return worker.output().find("retrying in") != std::string::npos; }))
      << worker.output();
  const std::string out = worker.output();
  EXPECT_NE(out.find("cannot connect to Redis at " + url()), std::string::npos) << out;
  EXPECT_TRUE(worker.running());
  start_redis();
  auto batch = start_batch("late", {job_line("late", "late", 2, 9)}, "out");
  ASSERT_EQ(batch->wait(), 0) << batch->output() << worker.output();
  EXPECT_EQ(png_pixels(path("out/late.png")), library_pixels("late", 2, 9));
}

TEST_F(scale_out, batch_reports_bad_lines_with_their_numbers) {
  start_redis();
  start_worker("w1");
  ASSERT_TRUE(eventually([&] { return redis({"SCARD", "diffuse:models"}).integer > 0; }));
  auto batch = start_batch("mixed",
                           {job_line("ok", "ok", 2, 1), R"({"model": "tiny-sd1", "sped": 3})",
                            "not json", R"({"model": "nope", "prompt": "x"})"},
                           "out");
  EXPECT_EQ(batch->wait(), 1);
  const std::string out = batch->output();
  EXPECT_NE(out.find("mixed.jsonl:2: unknown field sped"), std::string::npos) << out;
  EXPECT_NE(out.find("mixed.jsonl:3: not a JSON object"), std::string::npos) << out;
  EXPECT_NE(out.find("mixed.jsonl:4: model: unknown model \"nope\""), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(path("out/ok.png")));
}

TEST_F(scale_out, stateless_fronts_queue_jobs_for_the_workers_and_answer_from_redis) {
  start_redis();
  start_worker("w1");
  serve::ServerConfig config;
  config.queue_url = url();
  TestServer front(config), other_front(config);
  const nlohmann::json body = {{"model", "tiny-sd1"}, {"prompt", "front"}, {"steps", 3},
                               {"seed", 21},          {"width", 64},       {"height", 64}};
  const auto [status, queued] = front.post("/api/v1/jobs", body);
  ASSERT_EQ(status, 202) << queued.dump();
  // Any front answers for any job: the other one reads it from Redis.
  const nlohmann::json job = wait_for_job(other_front, queued["id"]);
  ASSERT_EQ(job.value("status", ""), "done") << job.dump();
  EXPECT_EQ(decode_b64_png(job["images"][0]["png_base64"]).to_rgb8(),
            library_pixels("front", 3, 21));
  // A1111's txt2img waits for the worker's result.
  const auto [a1111_status, a1111] = front.post("/sdapi/v1/txt2img", {{"prompt", "front"},
                                                                      {"steps", 3},
                                                                      {"seed", 21},
                                                                      {"width", 64},
                                                                      {"height", 64},
                                                                      {"cfg_scale", 7.5},
                                                                      {"sampler_name", "PLMS"}});
  ASSERT_EQ(a1111_status, 200) << a1111.dump();
  EXPECT_EQ(decode_b64_png(a1111["images"][0]).to_rgb8(), library_pixels("front", 3, 21, "pndm"));
  // Settings are shared through Redis.
  ASSERT_EQ(front.post("/sdapi/v1/options", {{"CLIP_stop_at_last_layers", 2}}).first, 200);
  EXPECT_EQ(redis({"HGET", "diffuse:settings", "CLIP_stop_at_last_layers"}).str, "2");
  EXPECT_TRUE(eventually([&] {
    return other_front.get("/sdapi/v1/options").second.value("CLIP_stop_at_last_layers", 0) == 2;
  }));
  // A cancel on a front stops the job on its worker within a step.
  const auto [long_status, long_job] = front.post(
      "/api/v1/jobs",
      {{"model", "tiny-sd1"}, {"prompt", "stop"}, {"steps", 200}, {"width", 64}, {"height", 64}});
  ASSERT_EQ(long_status, 202);
  const std::string long_key = "diffuse:job:" + long_job["id"].get<std::string>();
  ASSERT_TRUE(eventually([&] {
    const std::string step = redis({"HGET", long_key, "step"}).str;
    return !step.empty() && std::stoi(step) >= 2;
  }));
  auto cancelled = front.client()->Delete(("/api/v1/jobs/" + long_job["id"].get<std::string>()));
  ASSERT_TRUE(cancelled);
  EXPECT_EQ(nlohmann::json::parse(cancelled->body).value("status", ""), "cancelled");
  EXPECT_TRUE(eventually([&] { return redis({"HGET", long_key, "status"}).str == "cancelled"; }));
  const std::string metrics = get_text(front, "/metrics");
  EXPECT_NE(metrics.find("diffuse_jobs_total{status=\"done\"} 2"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("diffuse_queue_waiting{model=\"tiny-sd1\"} 0"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("diffuse_workers 1"), std::string::npos) << metrics;
}

TEST_F(scale_out, image_to_image_travels_through_the_queue) {
  start_redis();
  start_worker("w1");
  serve::ServerConfig config;
  config.queue_url = url();
  TestServer front(config);
  std::ifstream in(fixture("golden/img2img-init.png"), std::ios::binary);
  const std::vector<uint8_t> init((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  const auto [status, r] =
      front.post("/sdapi/v1/img2img", {{"prompt", "img"},
                                       {"init_images", {serve::base64_encode(init)}},
                                       {"denoising_strength", 0.5},
                                       {"steps", 4},
                                       {"seed", 8},
                                       {"width", 64},
                                       {"height", 64},
                                       {"cfg_scale", 7.5},
                                       {"sampler_name", "DDIM"}});
  ASSERT_EQ(status, 200) << r.dump();
  LoadOptions lo;
  lo.threads = 1;  // as the worker runs here
  auto pipe = Pipeline::load(fixture("models/tiny-sd1"), lo);
  GenerateOptions o;
  o.prompt = "img";
  o.init_image = decode_png(init.data(), init.size());
  o.strength = 0.5f;
  o.steps = 4;
  o.seed = 8;
  o.width = o.height = 64;
  o.scheduler = "ddim";
  EXPECT_EQ(decode_b64_png(r["images"][0]).to_rgb8(), pipe->generate(o).images.at(0).to_rgb8());
  // A queue job (a batch line) with a strength but no image is refused, naming both.
  try {
    serve::parse_queue_job({{"model", "tiny-sd1"}, {"strength", 0.5}});
    ADD_FAILURE() << "a strength without init_image was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("strength needs init_image"), std::string::npos);
  }
}

TEST_F(scale_out, inpainting_travels_through_the_queue_and_loras_are_refused) {
  start_redis();
  start_worker("w1");
  serve::ServerConfig config;
  config.queue_url = url();
  config.lora_dir = path("loras");
  fs::create_directories(config.lora_dir);
  fs::copy_file(fs::path(__FILE__).parent_path().parent_path() / "data" / "reference" / "inputs" /
                    "lora-peft-tiny-sd1.safetensors",
                fs::path(config.lora_dir) / "peft.safetensors");
  TestServer front(config);
  std::ifstream in(fixture("golden/img2img-init.png"), std::ios::binary);
  const std::vector<uint8_t> init((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  std::ifstream mask_in(fixture("golden/inpaint-mask.png"), std::ios::binary);
  const std::vector<uint8_t> mask((std::istreambuf_iterator<char>(mask_in)),
                                  std::istreambuf_iterator<char>());
  const nlohmann::json body = {{"prompt", "img"},
                               {"init_images", {serve::base64_encode(init)}},
                               {"mask", serve::base64_encode(mask)},
                               {"mask_blur", 3},
                               {"inpainting_mask_invert", 1},
                               {"steps", 4},
                               {"seed", 8},
                               {"width", 64},
                               {"height", 64},
                               {"cfg_scale", 7.5},
                               {"sampler_name", "DDIM"}};
  const auto [status, r] = front.post("/sdapi/v1/img2img", body);
  ASSERT_EQ(status, 200) << r.dump();
  LoadOptions lo;
  lo.threads = 1;  // as the worker runs here
  auto pipe = Pipeline::load(fixture("models/tiny-sd1"), lo);
  GenerateOptions o;
  o.prompt = "img";
  o.init_image = decode_png(init.data(), init.size());
  std::vector<uint8_t> inverted = decode_png(mask.data(), mask.size()).to_rgb8();
  for (uint8_t& v : inverted) v = static_cast<uint8_t>(255 - v);
  o.mask_image = Image::from_rgb8(128, 128, inverted);
  o.mask_blur = 3;
  o.strength = 0.75f;
  o.steps = 4;
  o.seed = 8;
  o.width = o.height = 64;
  o.scheduler = "ddim";
  EXPECT_EQ(decode_b64_png(r["images"][0]).to_rgb8(), pipe->generate(o).images.at(0).to_rgb8());

  // LoRAs and ControlNets are files on the front: refused before anything is queued.
  nlohmann::json lora = body;
  lora["prompt"] = "img <lora:peft:1>";
  const auto [code, refused] = front.post("/sdapi/v1/img2img", lora);
  EXPECT_EQ(code, 422);
  EXPECT_NE(refused.value("detail", "").find("--queue"), std::string::npos) << refused.dump();
  // A queue job (a batch line) with a mask but no image is refused, naming both.
  try {
    serve::parse_queue_job({{"model", "tiny-sd1"}, {"mask_image", serve::base64_encode(mask)}});
    ADD_FAILURE() << "a mask without init_image was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("mask_image needs init_image"), std::string::npos);
  }
  // "Only masked" travels as mask_crop.
  const GenerateOptions cropped =
      serve::parse_queue_job({{"model", "tiny-sd1"},
                              {"init_image", serve::base64_encode(init)},
                              {"mask_image", serve::base64_encode(mask)},
                              {"mask_crop", 5}})
          .options;
  ASSERT_TRUE(cropped.mask_crop.has_value());
  EXPECT_EQ(*cropped.mask_crop, 5);
}

TEST_F(scale_out, an_a1111_batch_is_split_across_workers_and_answered_in_order) {
  start_redis();
  start_worker("w1");
  start_worker("w2");
  serve::ServerConfig config;
  config.queue_url = url();
  TestServer front(config);
  const auto [status, r] = front.post("/sdapi/v1/txt2img", {{"prompt", "batch"},
                                                            {"steps", 3},
                                                            {"seed", 30},
                                                            {"width", 64},
                                                            {"height", 64},
                                                            {"cfg_scale", 7.5},
                                                            {"batch_size", 2},
                                                            {"n_iter", 2}});
  ASSERT_EQ(status, 200) << r.dump();
  ASSERT_EQ(r["images"].size(), 4u);
  const nlohmann::json info = nlohmann::json::parse(r["info"].get<std::string>());
  EXPECT_EQ(info["all_seeds"], nlohmann::json::array({30, 31, 32, 33}));
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(decode_b64_png(r["images"][i]).to_rgb8(), library_pixels("batch", 3, 30 + i, "euler"))
        << "image " << i;
}

TEST_F(scale_out, a_front_answers_429_when_its_models_queue_is_full) {
  start_redis();  // no worker: nothing is taken off the queue
  serve::ServerConfig config;
  config.queue_url = url();
  config.max_queue = 2;
  TestServer front(config);
  const nlohmann::json body = {{"model", "tiny-sd1"}, {"prompt", "wait"}, {"steps", 2}};
  EXPECT_EQ(front.post("/api/v1/jobs", body).first, 202);
  EXPECT_EQ(front.post("/api/v1/jobs", body).first, 202);
  auto full = front.client()->Post("/api/v1/jobs", body.dump(), "application/json");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->status, 429) << full->body;
  EXPECT_FALSE(full->get_header_value("Retry-After").empty());
  EXPECT_NE(full->body.find("2 jobs waiting"), std::string::npos) << full->body;
}

TEST_F(scale_out, one_worker_process_runs_concurrency_consumers) {
  start_redis();
  start_worker("wc", {"--concurrency", "2"});
  std::vector<std::string> lines;
  for (int i = 0; i < 4; ++i)
    lines.push_back(job_line("c" + std::to_string(i), "two at once", 6, 200 + i));
  auto batch = start_batch("four", lines, "out4");
  ASSERT_EQ(batch->wait(std::chrono::seconds(240)), 0) << batch->output();
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(png_pixels(path("out4/c" + std::to_string(i) + ".png")),
              library_pixels("two at once", 6, 200 + i));
  // Two consumers of the group, named after the worker.
  const serve::RedisValue consumers =
      redis({"XINFO", "CONSUMERS", "diffuse:jobs:tiny-sd1", "diffuse-workers"});
  std::set<std::string> names;
  for (const auto& c : consumers.elements) names.insert(serve::field_of(c, "name"));
  EXPECT_EQ(names, (std::set<std::string>{"wc-0", "wc-1"}));
}

TEST(serve_metrics, in_process_metrics_count_jobs_and_steps) {
  TestServer s;
  const auto [status, queued] = s.post(
      "/api/v1/jobs", {{"prompt", "m"}, {"steps", 2}, {"seed", 1}, {"width", 64}, {"height", 64}});
  ASSERT_EQ(status, 202);
  ASSERT_EQ(wait_for_job(s, queued["id"]).value("status", ""), "done");
  const std::string metrics = get_text(s, "/metrics");
  EXPECT_NE(metrics.find("diffuse_jobs_total{status=\"done\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("diffuse_queue_waiting 0"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("diffuse_denoise_seconds_total "), std::string::npos) << metrics;
}

}  // namespace diffuse::test
