// The A1111 routes: images equal the library's (and so diffusers') for the same parameters, A1111's
// batch and default rules, progress, interrupt, models and options, png-info.
#include <fstream>
#include <future>
#include <iterator>

#include "common/reference_data.h"
#include "io/png_image.h"
#include "serve/a1111_params.h"
#include "server_fixture.h"

namespace {

using diffuse::test::decode_b64_png;
using diffuse::test::TestServer;

std::vector<uint8_t> library_image(const std::string& model, diffuse::GenerateOptions o) {
  auto pipe = diffuse::Pipeline::load(diffuse::test::fixture("models/" + model));
  return pipe->generate(o).images.at(0).to_rgb8();
}

// The fixtures README's PNG tolerance: within one level on at least 99.9% of values.
double fraction_within_one_level(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  size_t close = 0;
  for (size_t i = 0; i < a.size(); ++i) close += std::abs(int(a[i]) - int(b[i])) <= 1;
  return double(close) / double(a.size());
}

std::vector<uint8_t> golden_png(const std::string& name) {
  return diffuse::read_png(diffuse::test::fixture("golden/" + name)).pixels;
}

TEST(a1111_api, txt2img_equals_the_library_and_the_diffusers_golden) {
  TestServer s;
  // The txt2img-dpmpp golden case: DPMSolverMultistep (A1111's "DPM++ 2M"), seed 42, 15 steps.
  const nlohmann::json body = {{"prompt", "a photo of an astronaut riding a horse on mars"},
                               {"steps", 15},
                               {"cfg_scale", 7.5},
                               {"seed", 42},
                               {"width", 128},
                               {"height", 128},
                               {"sampler_name", "DPM++ 2M"}};
  auto [status, r] = s.post("/sdapi/v1/txt2img", body);
  ASSERT_EQ(status, 200) << r.dump();
  ASSERT_EQ(r["images"].size(), 1u);
  const diffuse::Image image = decode_b64_png(r["images"][0]);
  ASSERT_EQ(image.width, 128);
  ASSERT_EQ(image.height, 128);

  diffuse::GenerateOptions o;
  o.prompt = body["prompt"];
  o.steps = 15;
  o.guidance_scale = 7.5f;
  o.seed = 42;
  o.width = o.height = 128;
  o.scheduler = "dpmpp-2m";
  EXPECT_EQ(image.to_rgb8(), library_image("tiny-sd1", o));
  EXPECT_GE(fraction_within_one_level(image.to_rgb8(), golden_png("txt2img-dpmpp-0.png")), 0.999);

  const nlohmann::json info = nlohmann::json::parse(r["info"].get<std::string>());
  EXPECT_EQ(info["seed"], 42);
  EXPECT_EQ(info["all_seeds"], nlohmann::json::array({42}));
  const std::string infotext = info["infotexts"][0];
  EXPECT_NE(infotext.find("Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 42, Size: 128x128"),
            std::string::npos)
      << infotext;
  EXPECT_NE(infotext.find("Model: tiny-sd1"), std::string::npos) << infotext;
  EXPECT_EQ(r["parameters"]["sampler_name"], "DPM++ 2M");
}

TEST(a1111_api, img2img_equals_the_diffusers_golden) {
  TestServer s;
  std::ifstream in(diffuse::test::fixture("golden/img2img-init.png"), std::ios::binary);
  std::vector<uint8_t> init((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const nlohmann::json body = {
      {"prompt", "a photo of an astronaut riding a horse on mars"},
      {"init_images", {"data:image/png;base64," + diffuse::serve::base64_encode(init)}},
      {"denoising_strength", 0.6},
      {"steps", 20},
      {"cfg_scale", 7.5},
      {"seed", 93},
      {"width", 128},
      {"height", 128},
      {"sampler_name", "DPM++ 2M"}};
  auto [status, r] = s.post("/sdapi/v1/img2img", body);
  ASSERT_EQ(status, 200) << r.dump();
  const diffuse::Image image = decode_b64_png(r["images"][0]);
  EXPECT_GE(fraction_within_one_level(image.to_rgb8(), golden_png("img2img-dpmpp-0.png")), 0.999);
  const std::string infotext = nlohmann::json::parse(r["info"].get<std::string>())["infotexts"][0];
  EXPECT_NE(infotext.find("Denoising strength: 0.6"), std::string::npos) << infotext;
}

TEST(a1111_api, batch_image_i_uses_seed_plus_i_and_defaults_are_a1111s) {
  TestServer s;
  auto [status, batch] = s.post("/sdapi/v1/txt2img", {{"prompt", "a cat"},
                                                      {"steps", 3},
                                                      {"width", 64},
                                                      {"height", 64},
                                                      {"seed", 7},
                                                      {"batch_size", 2},
                                                      {"n_iter", 2}});
  ASSERT_EQ(status, 200) << batch.dump();
  ASSERT_EQ(batch["images"].size(), 4u);
  const nlohmann::json info = nlohmann::json::parse(batch["info"].get<std::string>());
  EXPECT_EQ(info["all_seeds"], nlohmann::json::array({7, 8, 9, 10}));
  EXPECT_EQ(info["sampler_name"], "Euler");  // A1111's default sampler
  EXPECT_EQ(info["cfg_scale"], 7.0);         // and guidance
  auto [status1, single] =
      s.post("/sdapi/v1/txt2img",
             {{"prompt", "a cat"}, {"steps", 3}, {"width", 64}, {"height", 64}, {"seed", 9}});
  ASSERT_EQ(status1, 200);
  EXPECT_EQ(decode_b64_png(batch["images"][2]).rgb, decode_b64_png(single["images"][0]).rgb);

  // send_images false: the images are generated but not sent.
  auto [status2, quiet] = s.post(
      "/sdapi/v1/txt2img",
      {{"prompt", "a cat"}, {"steps", 1}, {"width", 64}, {"height", 64}, {"send_images", false}});
  ASSERT_EQ(status2, 200);
  EXPECT_TRUE(quiet["images"].empty());
}

TEST(a1111_api, every_default_field_a_client_sends_is_accepted) {
  TestServer s;
  // The body A1111's own API docs show, every field at its default (what real clients send).
  const nlohmann::json body = nlohmann::json::parse(R"({
    "prompt": "a cat", "negative_prompt": "", "styles": [], "seed": -1, "subseed": -1,
    "subseed_strength": 0, "seed_resize_from_h": -1, "seed_resize_from_w": -1,
    "sampler_name": "Euler a", "scheduler": "Automatic", "batch_size": 1, "n_iter": 1,
    "steps": 2, "cfg_scale": 7, "width": 64, "height": 64, "restore_faces": null,
    "tiling": null, "do_not_save_samples": false, "do_not_save_grid": false, "eta": null,
    "denoising_strength": 0, "s_min_uncond": 0, "s_churn": 0, "s_tmax": null, "s_tmin": 0,
    "s_noise": 1, "override_settings": {}, "override_settings_restore_afterwards": true,
    "refiner_checkpoint": null, "refiner_switch_at": null, "disable_extra_networks": false,
    "firstpass_image": null, "comments": {}, "enable_hr": false, "firstphase_width": 0,
    "firstphase_height": 0, "hr_scale": 2, "hr_upscaler": "Latent", "hr_second_pass_steps": 0,
    "hr_resize_x": 0, "hr_resize_y": 0, "hr_checkpoint_name": null, "hr_sampler_name": null,
    "hr_scheduler": null, "hr_prompt": "", "hr_negative_prompt": "", "force_task_id": null,
    "sampler_index": "Euler", "script_name": null, "script_args": [], "send_images": true,
    "save_images": false, "alwayson_scripts": {}, "infotext": null})");
  auto [status, r] = s.post("/sdapi/v1/txt2img", body);
  ASSERT_EQ(status, 200) << r.dump();
  const nlohmann::json info = nlohmann::json::parse(r["info"].get<std::string>());
  EXPECT_EQ(info["sampler_name"], "Euler a");
  EXPECT_LT(info["seed"].get<int64_t>(), int64_t{1} << 32);  // seed -1 drew one

  // The same fields away from their defaults are refused, naming the field.
  for (const auto& [field, value] :
       std::vector<std::pair<std::string, nlohmann::json>>{{"hr_resize_x", 1024},
                                                           {"restore_faces", true},
                                                           {"subseed_strength", 0.5},
                                                           {"styles", {"anime"}},
                                                           {"alwayson_scripts", {{"x", 1}}},
                                                           {"save_images", true},
                                                           {"not_an_a1111_field", 1}}) {
    nlohmann::json b = body;
    b[field] = value;
    auto [code, err] = s.post("/sdapi/v1/txt2img", b);
    EXPECT_EQ(code, 422) << field;
    EXPECT_NE(err["detail"].get<std::string>().find(field), std::string::npos) << err.dump();
  }
}

TEST(a1111_api, null_fields_mean_their_defaults) {
  TestServer s;
  auto [status, r] = s.post("/sdapi/v1/txt2img", {{"prompt", nullptr},
                                                  {"negative_prompt", nullptr},
                                                  {"sampler_name", nullptr},
                                                  {"batch_size", nullptr},
                                                  {"steps", 1},
                                                  {"width", 64},
                                                  {"height", 64}});
  ASSERT_EQ(status, 200) << r.dump();
  const nlohmann::json info = nlohmann::json::parse(r["info"].get<std::string>());
  EXPECT_EQ(info["prompt"], "");
  EXPECT_EQ(info["sampler_name"], "Euler");
  EXPECT_EQ(info["batch_size"], 1);
}

TEST(a1111_api, progress_is_seen_mid_generation_and_interrupt_stops_the_job) {
  TestServer s;
  auto running = std::async(std::launch::async, [&] {
    return s.post("/sdapi/v1/txt2img",
                  {{"prompt", "a cat"}, {"steps", 400}, {"width", 64}, {"height", 64}});
  });
  nlohmann::json progress;
  for (int i = 0; i < 2000; ++i) {
    progress = s.get("/sdapi/v1/progress").second;
    if (progress["state"]["sampling_step"].get<int>() >= 2 && !progress["current_image"].is_null())
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GE(progress["state"]["sampling_step"].get<int>(), 2) << progress.dump();
  EXPECT_EQ(progress["state"]["sampling_steps"], 400);
  EXPECT_GT(progress["progress"].get<double>(), 0.0);
  EXPECT_LT(progress["progress"].get<double>(), 1.0);
  EXPECT_FALSE(decode_b64_png(progress["current_image"]).rgb.empty());

  ASSERT_EQ(s.post("/sdapi/v1/interrupt", nlohmann::json::object()).first, 200);
  ASSERT_EQ(running.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  auto [status, r] = running.get();
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(r["images"].empty());
  EXPECT_TRUE(nlohmann::json::parse(r["info"].get<std::string>())["interrupted"].get<bool>());
  EXPECT_TRUE(s.alive());
}

TEST(a1111_api, models_options_samplers_and_png_info) {
  TestServer s;
  auto [st, models] = s.get("/sdapi/v1/sd-models");
  ASSERT_EQ(st, 200);
  ASSERT_EQ(models.size(), 2u);
  const std::string title = models[1]["title"];
  EXPECT_EQ(title.rfind("tiny-sd2 [", 0), 0u) << title;
  EXPECT_EQ(models[1]["hash"].get<std::string>().size(), 10u);
  EXPECT_EQ(models[1]["sha256"].get<std::string>().substr(0, 10), models[1]["hash"]);

  ASSERT_EQ(s.post("/sdapi/v1/options", {{"sd_model_checkpoint", title}}).first, 200);
  EXPECT_EQ(s.get("/sdapi/v1/options").second["sd_model_checkpoint"], title);
  auto [code, r] =
      s.post("/sdapi/v1/txt2img",
             {{"prompt", "x"}, {"steps", 1}, {"width", 64}, {"height", 64}, {"seed", 3}});
  ASSERT_EQ(code, 200) << r.dump();
  const std::string infotext = nlohmann::json::parse(r["info"].get<std::string>())["infotexts"][0];
  EXPECT_NE(infotext.find("Model: tiny-sd2"), std::string::npos) << infotext;
  EXPECT_EQ(s.post("/sdapi/v1/options", {{"sd_model_checkpoint", "nope"}}).first, 422);
  EXPECT_EQ(s.post("/sdapi/v1/options", {{"unknown_option", 1}}).first, 422);

  // png-info reads back what the server wrote.
  auto [pi, info] = s.post("/sdapi/v1/png-info", {{"image", r["images"][0]}});
  ASSERT_EQ(pi, 200) << info.dump();
  EXPECT_EQ(info["info"], infotext);
  EXPECT_EQ(info["parameters"]["Prompt"], "x");
  EXPECT_EQ(info["parameters"]["Seed"], "3");
  EXPECT_EQ(info["parameters"]["Size"], "64x64");
  EXPECT_EQ(info["parameters"]["Model"], "tiny-sd2");

  auto samplers = s.get("/sdapi/v1/samplers").second;
  bool karras = false;
  for (const auto& x : samplers) karras = karras || x["name"] == "DPM++ 2M Karras";
  EXPECT_TRUE(karras);
  EXPECT_EQ(s.get("/sdapi/v1/schedulers").second[1]["label"], "Karras");
  EXPECT_GT(s.get("/sdapi/v1/memory").second["ram"]["total"].get<uint64_t>(), 0u);
}

TEST(a1111_api, infotext_parser_follows_a1111) {
  const auto p = diffuse::serve::parse_infotext(
      "a cat,\nin a hat\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M Karras, "
      "CFG scale: 7, Seed: 1, Size: 512x768, Lora hashes: \"a: 1, b: 2\", Model: sd15");
  EXPECT_EQ(p.at("Prompt"), "a cat,\nin a hat");
  EXPECT_EQ(p.at("Negative prompt"), "blurry");
  EXPECT_EQ(p.at("Sampler"), "DPM++ 2M Karras");
  EXPECT_EQ(p.at("Size"), "512x768");
  EXPECT_EQ(p.at("Lora hashes"), "\"a: 1, b: 2\"");
  EXPECT_EQ(p.at("Model"), "sd15");
  // Without a settings line everything is prompt.
  EXPECT_EQ(diffuse::serve::parse_infotext("just words").at("Prompt"), "just words");
}

}  // namespace

TEST(a1111_api, refiner_checkpoint_runs_the_sdxl_ensemble) {
  const std::string refiner = diffuse::test::assemble_tiny_sdxl_refiner(
      std::filesystem::path(diffuse::test::temp_dir()) / "a1111-tiny-sdxl-refiner");
  TestServer s({}, {{"tiny-sdxl", diffuse::test::fixture("models/tiny-sdxl"), false},
                    {"tiny-sdxl-refiner", refiner, false}});
  nlohmann::json body = {{"prompt", "a horse"},
                         {"steps", 6},
                         {"cfg_scale", 5},
                         {"seed", 9},
                         {"width", 64},
                         {"height", 64},
                         {"sampler_name", "Euler"},
                         {"override_settings", {{"sd_model_checkpoint", "tiny-sdxl"}}},
                         {"refiner_checkpoint", "tiny-sdxl-refiner"},
                         {"refiner_switch_at", 0.7}};
  auto [status, r] = s.post("/sdapi/v1/txt2img", body);
  ASSERT_EQ(status, 200) << r.dump();
  diffuse::GenerateOptions o;
  o.prompt = "a horse";
  o.negative_prompt = "";     // A1111 sends its empty negative prompt
  o.prompt_syntax = "a1111";  // which A1111 syntax on SDXL conditions as zeros
  o.steps = 6;
  o.guidance_scale = 5.f;
  o.seed = 9;
  o.width = o.height = 64;
  o.scheduler = "euler";
  o.refiner = refiner;
  o.high_noise_frac = 0.7f;
  EXPECT_EQ(decode_b64_png(r["images"][0]).to_rgb8(), library_image("tiny-sdxl", o));
  const std::string infotext = nlohmann::json::parse(r["info"].get<std::string>())["infotexts"][0];
  EXPECT_NE(infotext.find("Refiner: a1111-tiny-sdxl-refiner, Refiner switch at: 0.7"),
            std::string::npos)
      << infotext;

  body["refiner_checkpoint"] = "no-such-refiner";
  std::tie(status, r) = s.post("/sdapi/v1/txt2img", body);
  EXPECT_EQ(status, 422) << r.dump();
  EXPECT_NE(r.dump().find("refiner_checkpoint"), std::string::npos) << r.dump();
  body["refiner_checkpoint"] = "tiny-sd1";  // not an SDXL refiner
  std::tie(status, r) = s.post("/sdapi/v1/txt2img", body);
  EXPECT_GE(status, 400) << r.dump();
  EXPECT_LT(status, 500) << r.dump();
}

TEST(a1111_api, prompts_are_read_with_a1111_syntax) {
  TestServer s;
  const std::string prompt = "a (red:1.3) cube BREAK on a [table]";
  const nlohmann::json body = {{"prompt", prompt}, {"steps", 2},
                               {"seed", 5},        {"width", 64},
                               {"height", 64},     {"sampler_name", "Euler"},
                               {"cfg_scale", 7},   {"negative_prompt", "(blurry)"}};
  auto [status, r] = s.post("/sdapi/v1/txt2img", body);
  ASSERT_EQ(status, 200) << r.dump();
  diffuse::GenerateOptions o;
  o.prompt = prompt;
  o.negative_prompt = "(blurry)";
  o.prompt_syntax = "a1111";
  o.steps = 2;
  o.seed = 5;
  o.width = o.height = 64;
  o.guidance_scale = 7.f;
  o.scheduler = "euler";
  EXPECT_EQ(decode_b64_png(r["images"][0]).to_rgb8(), library_image("tiny-sd1", o));
}
