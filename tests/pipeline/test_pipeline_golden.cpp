// Whole pipelines against diffusers: every step latent, the final float image, and the PNG.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/pipeline_check.h"
#include "diffuse/diffuse.hpp"
#include "io/json_config.h"
#include "io/png_image.h"

using namespace diffuse;

namespace {

void check_pipeline(const std::string& name, const std::string& backend) {
  const auto meta =
      parse_json(test::golden("pipe-" + name + ".safetensors").metadata().at("json"), name);
  LoadOptions load;
  load.backend = backend;
  auto pipe = Pipeline::load(test::fixture("models/" + meta.at("model").get<std::string>()), load);
  ASSERT_EQ(pipe->info().backend, backend);
  test::check_golden_pipeline(*pipe, test::fixture("golden/pipe-" + name + ".safetensors"),
                              test::fixture("golden/" + name + "-0.png"), name + " on " + backend);
}

}  // namespace

// The tiny-model goldens run on every backend: the optimised one and the reference loop nests.
class PipelineGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(PipelineGolden, txt2img_pndm_with_negative_prompt) {
  check_pipeline("txt2img-pndm", GetParam());
}
TEST_P(PipelineGolden, txt2img_dpmpp) {
  check_pipeline("txt2img-dpmpp", GetParam());
}
TEST_P(PipelineGolden, txt2img_no_guidance_euler) {
  check_pipeline("txt2img-nocfg", GetParam());
}
TEST_P(PipelineGolden, txt2img_sd2_v_prediction) {
  check_pipeline("txt2img-sd2-dpmpp-v", GetParam());
}
TEST_P(PipelineGolden, img2img_dpmpp_strength) {
  check_pipeline("img2img-dpmpp", GetParam());
}

TEST_P(PipelineGolden, sdxl_txt2img_euler) {
  LoadOptions load;
  load.backend = GetParam();
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"), load);
  EXPECT_EQ(pipe->info().family, "sdxl");
  test::check_golden_pipeline(*pipe, test::fixture("golden/pipe-sdxl-txt2img.safetensors"),
                              test::fixture("golden/sdxl-txt2img-0.png"),
                              "sdxl-txt2img on " + GetParam());
}

TEST_P(PipelineGolden, inpaint_9_channel_pndm) {
  LoadOptions load;
  load.backend = GetParam();
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1-inpaint"), load);
  test::check_golden_pipeline(*pipe, test::fixture("golden/pipe-inpaint-pndm.safetensors"),
                              test::fixture("golden/inpaint-pndm-0.png"),
                              "inpaint-pndm on " + GetParam());
}

INSTANTIATE_TEST_SUITE_P(Backends, PipelineGolden, ::testing::ValuesIn(backend_names()));

TEST(pipeline, bad_options_are_named) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  auto expect_config_error = [&](GenerateOptions o, const std::string& fragment) {
    o.prompt = "x";
    try {
      pipe->generate(o);
      FAIL() << "no error for " << fragment;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  GenerateOptions o;
  o.steps = 0;
  expect_config_error(o, "steps");
  o = {};
  o.width = 100;
  expect_config_error(o, "width");
  o = {};
  o.scheduler = "warp-drive";
  expect_config_error(o, "warp-drive");
  o = {};
  o.rng = "quantum";
  expect_config_error(o, "quantum");
  o = {};
  o.init_image = Image::from_rgb8(128, 128, std::vector<uint8_t>(128 * 128 * 3, 100));
  o.strength = 1.5f;
  expect_config_error(o, "strength");
  o.strength = 0.f;
  expect_config_error(o, "strength");
}

TEST(pipeline, cancellation_stops_without_images) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "x";
  o.steps = 5;
  int calls = 0;
  EXPECT_THROW(pipe->generate(o, [&](const Progress&) { return ++calls < 2; }), Cancelled);
  EXPECT_EQ(calls, 2);
}

TEST(pipeline, image_count_draws_one_batch) {
  // Two images from one generator: the first image equals neither a rerun with a different seed
  // nor the second image, and a rerun reproduces both exactly.
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "a cat";
  o.steps = 3;
  o.image_count = 2;
  o.seed = 7;
  auto a = pipe->generate(o);
  auto b = pipe->generate(o);
  ASSERT_EQ(a.images.size(), 2u);
  EXPECT_EQ(a.images[0].rgb, b.images[0].rgb);
  EXPECT_EQ(a.images[1].rgb, b.images[1].rgb);
  EXPECT_NE(a.images[0].rgb, a.images[1].rgb);
  const std::string params = a.parameters_text(1);
  EXPECT_NE(params.find("Seed: 7"), std::string::npos) << params;
  EXPECT_NE(params.find("Steps: 3"), std::string::npos) << params;
}
