// Inpainting against diffusers' StableDiffusionInpaintPipeline on the tiny models, for the cases
// the shared golden (9-channel, PNDM, full strength) does not cover: ordinary 4-channel models
// (the re-noised original blended back each step), strength below 1 (the image latents drawn
// first), a mask of another size (resized), a blurred mask. References:
// tests/data/reference/pipe-inpaint*.safetensors by tools/reference/make_extension_references.py.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/fixtures.h"
#include "common/pipeline_check.h"
#include "common/reference_data.h"
#include "diffuse/diffuse.hpp"

using namespace diffuse;

namespace {

void check_inpaint_case(const std::string& name) {
  const nlohmann::json meta = test::reference_metadata(name);
  ASSERT_EQ(meta.at("pipeline"), "StableDiffusionInpaintPipeline");
  auto pipe = Pipeline::load(test::fixture("models/" + meta.at("model").get<std::string>()));
  GenerateOptions o = test::options_from_metadata(meta);
  o.init_image = load_png(test::reference_input(meta, "image"));
  o.mask_image = load_png(test::reference_input(meta, "mask_image"));
  o.mask_blur = meta.at("mask_blur").get<int>();
  o.strength = meta.at("strength").get<float>();
  const test::PipelineErrors e =
      test::check_pipeline_reference(*pipe, o, test::reference("pipe-" + name + ".safetensors"),
                                     {test::reference(name + "-0.png")}, name);
  EXPECT_EQ(e.scheduler_class, meta.at("scheduler").get<std::string>());
}

}  // namespace

TEST(inpaint_reference, four_channel_model_full_strength_ddim) {
  check_inpaint_case("inpaint4-ddim");
}
TEST(inpaint_reference, four_channel_model_strength_dpmpp) {
  check_inpaint_case("inpaint4-strength-dpmpp");
}
TEST(inpaint_reference, nine_channel_model_strength_euler) {
  check_inpaint_case("inpaint9-strength-euler");
}
TEST(inpaint_reference, mask_of_another_size_is_resized) {
  check_inpaint_case("inpaint9-mask-resize");
  check_inpaint_case("inpaint9-mask-ellipse-resize");
}
TEST(inpaint_reference, blurred_mask_dpmpp) {
  check_inpaint_case("inpaint9-blur-dpmpp");
}

TEST(inpaint, default_strength_is_one_and_recorded) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "x";
  o.steps = 2;
  o.init_image = load_png(test::fixture("golden/img2img-init.png"));
  o.mask_image = load_png(test::fixture("golden/inpaint-mask.png"));
  o.mask_blur = 2;
  const GenerationResult r = pipe->generate(o);
  ASSERT_TRUE(r.options.strength.has_value());
  EXPECT_EQ(*r.options.strength, 1.f);
  EXPECT_NE(r.parameters_text(0).find("Mask blur: 2"), std::string::npos);
}

TEST(inpaint, bad_input_is_named) {
  auto sd1 = Pipeline::load(test::fixture("models/tiny-sd1"));
  auto inpaint_model = Pipeline::load(test::fixture("models/tiny-sd1-inpaint"));
  const Image image = load_png(test::fixture("golden/img2img-init.png"));
  const Image mask = load_png(test::fixture("golden/inpaint-mask.png"));
  GenerateOptions o;
  o.prompt = "x";
  o.steps = 2;
  // A 9-channel model cannot start from noise alone.
  test::expect_error_mentioning<ConfigError>([&] { inpaint_model->generate(o); },
                                             {"inpainting model", "mask"});
  GenerateOptions m = o;
  m.mask_image = mask;
  test::expect_error_mentioning<ConfigError>([&] { sd1->generate(m); }, {"mask", "image"});
  m.init_image = image;
  m.mask_blur = -1;
  test::expect_error_mentioning<ConfigError>([&] { sd1->generate(m); }, {"mask blur"});
  m.mask_blur = 0;
  m.mask_image->rgb.pop_back();
  test::expect_error_mentioning<ConfigError>([&] { sd1->generate(m); }, {"mask"});
  GenerateOptions b = o;
  b.mask_blur = 3;
  test::expect_error_mentioning<ConfigError>([&] { sd1->generate(b); }, {"mask blur"});
}
