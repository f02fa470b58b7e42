// Whole pipelines against diffusers: every step latent, the final float image, and the PNG.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "diffuse/diffuse.hpp"
#include "io/json_config.h"
#include "io/png_image.h"

using namespace diffuse;

namespace {

struct PipelineCase {
  nlohmann::json meta;
  Tensor step_latents, images;
};

PipelineCase load_case(const std::string& name) {
  auto f = test::golden("pipe-" + name + ".safetensors");
  return {parse_json(f.metadata().at("json"), name), f.get("step_latents"), f.get("images")};
}

void check_pipeline(const std::string& name) {
  PipelineCase c = load_case(name);
  const auto& m = c.meta;
  auto pipe = Pipeline::load(test::fixture("models/" + m.at("model").get<std::string>()));
  GenerateOptions o;
  o.prompt = m.at("prompt").get<std::string>();
  o.negative_prompt = m.value("negative_prompt", "");
  o.steps = m.at("num_inference_steps").get<int>();
  o.guidance_scale = m.at("guidance_scale").get<float>();
  o.seed = m.at("seed").get<uint64_t>();
  o.scheduler = m.at("scheduler").get<std::string>();
  o.width = m.value("width", 0);
  o.height = m.value("height", 0);
  if (m.contains("strength")) {
    o.init_image = load_png(test::fixture("golden/img2img-init.png"));
    o.strength = m.at("strength").get<float>();
  }
  std::vector<Tensor> steps;
  GenerationResult r = pipe->generate(o, [&](const Progress& p) {
    Shape s(p.latent_shape.begin(), p.latent_shape.end());
    steps.push_back(Tensor::from_floats(p.latents, s));
    return true;
  });
  ASSERT_EQ(static_cast<int64_t>(steps.size()), c.step_latents.dim(0)) << "model evaluations";
  double worst_step = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    const double e =
        test::rel_error(steps[i], c.step_latents.narrow(0, static_cast<int64_t>(i), 1));
    worst_step = std::max(worst_step, e);
    EXPECT_LT(e, 1e-3) << "step " << i;
  }
  ASSERT_EQ(r.images.size(), 1u);
  const Image& img = r.images[0];
  Tensor ours = Tensor::from_floats(img.rgb.data(), {1, img.height, img.width, 3});
  const double e_img = test::abs_error(ours, c.images);
  EXPECT_LT(e_img, 2e-3);

  // PNG: within one level on >= 99.9% of values.
  Rgb8Image ref = read_png(test::fixture("golden/" + name + "-0.png"));
  const auto mine = img.to_rgb8();
  ASSERT_EQ(ref.pixels.size(), mine.size());
  size_t close = 0;
  for (size_t i = 0; i < mine.size(); ++i)
    close += std::abs(int(mine[i]) - int(ref.pixels[i])) <= 1;
  const double frac = double(close) / double(mine.size());
  EXPECT_GE(frac, 0.999);
  std::cout << name << ": worst step latent rel error " << worst_step << ", image abs error "
            << e_img << ", PNG values within 1 level " << frac * 100 << "%\n";
}

}  // namespace

TEST(pipeline, txt2img_pndm_with_negative_prompt) {
  check_pipeline("txt2img-pndm");
}
TEST(pipeline, txt2img_dpmpp) {
  check_pipeline("txt2img-dpmpp");
}
TEST(pipeline, txt2img_no_guidance_euler) {
  check_pipeline("txt2img-nocfg");
}
TEST(pipeline, txt2img_sd2_v_prediction) {
  check_pipeline("txt2img-sd2-dpmpp-v");
}
TEST(pipeline, img2img_dpmpp_strength) {
  check_pipeline("img2img-dpmpp");
}

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
