// The hires fix (A1111's enable_hr) as a composition: the latent upscalers against torch's
// F.interpolate (tools/reference/make_latent_upscale_references.py), the Lanczos upscaler against
// the library's own txt2img -> PIL-exact resize -> img2img calls it stands for (with ControlNets
// in both passes too), and the options' errors.
#include <gtest/gtest.h>

#include <string>

#include "common/fixtures.h"
#include "common/pipeline_check.h"
#include "common/reference_data.h"
#include "diffuse/diffuse.hpp"
#include "io/image_resize.h"
#include "io/safetensors.h"
#include "pipeline/hires_fix.h"

using namespace diffuse;

TEST(hires_fix, latent_upscalers_match_torch_interpolate) {
  const auto f = SafetensorsFile::open(test::reference("latent-upscale.safetensors"));
  const Tensor input = f.get("input");
  int cases = 0;
  for (const std::string& key : f.keys()) {
    if (key == "input") continue;
    const Tensor ref = f.get(key);
    const bool bilinear = key.rfind("bilinear", 0) == 0;
    const Tensor ours = stages::upscale_latents(input, ref.dim(2), ref.dim(3), bilinear);
    // The fixtures README's measure; a few float32 ulps (FMA contraction differs per build).
    EXPECT_LT(test::rel_error(ours, ref), 1e-6) << key;
    ++cases;
  }
  EXPECT_EQ(cases, 8);
}

TEST(hires_fix, lanczos_pass_is_txt2img_resize_img2img) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "a lighthouse";
  o.seed = 5;
  o.steps = 4;
  o.width = o.height = 64;
  o.scheduler = "euler-a";  // stochastic: the second pass's generator matters too
  o.hires = HiresFix{1.5f, 3, 0.6f, "lanczos"};
  int reported = 0, total = 0;
  const GenerationResult hires = pipe->generate(o, [&](const Progress& p) {
    reported = p.step;
    total = p.total_steps;
    return true;
  });
  ASSERT_EQ(hires.images.size(), 1u);
  EXPECT_EQ(hires.images[0].width, 96);
  EXPECT_EQ(hires.images[0].height, 96);
  EXPECT_EQ(reported, total);
  EXPECT_EQ(total, 4 + 1);  // int(3 x 0.6) = 1 second-pass step
  EXPECT_NE(hires.parameters_text(0).find("Hires upscale: 1.5, Hires steps: 3, Hires upscaler: "
                                          "Lanczos, Denoising strength: 0.6"),
            std::string::npos);

  // The same by hand: txt2img, Lanczos resize of the 8-bit image, img2img with the same seed.
  GenerateOptions second = test::lanczos_hires_by_hand(*pipe, o);
  EXPECT_EQ(pipe->generate(second).images[0].rgb, hires.images[0].rgb);
}

TEST(hires_fix, latent_upscalers_run_at_the_larger_size) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "a lighthouse";
  o.steps = 3;
  o.width = 64;
  o.height = 48;
  o.hires = HiresFix{2.f, 0, 0.7f, "latent"};
  const GenerationResult nearest = pipe->generate(o);
  EXPECT_EQ(nearest.images[0].width, 128);
  EXPECT_EQ(nearest.images[0].height, 96);
  o.hires->upscaler = "latent-bilinear";
  EXPECT_NE(pipe->generate(o).images[0].rgb, nearest.images[0].rgb);
}

TEST(hires_fix, bad_options_are_named) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "x";
  o.steps = 1;
  o.width = o.height = 64;
  o.hires = HiresFix{0.5f, 0, 0.7f, "latent"};
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); }, {"hires scale"});
  o.hires = HiresFix{2.f, 0, 0.7f, "esrgan"};
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); }, {"esrgan"});
  o.hires = HiresFix{2.f, 0, 0.f, "latent"};
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); }, {"hires strength"});
  o.hires = HiresFix{2.f, 0, 0.7f, "latent"};
  o.init_image = load_png(test::fixture("golden/img2img-init.png"));
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); },
                                             {"hires", "text-to-image"});
}

TEST(hires_fix, controlnets_act_in_both_passes) {
  // A1111's hires fix with a ControlNet unit ("Both"): txt2img with the ControlNet, Lanczos
  // resize, then img2img with the ControlNet and its image at the larger size.
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "a lighthouse";
  o.seed = 6;
  o.steps = 4;
  o.width = o.height = 64;
  o.scheduler = "euler";
  o.controlnets = {{test::fixture("models/tiny-controlnet"),
                    load_png(test::fixture("golden/img2img-init.png")), 0.9f, 0.0, 1.0}};
  o.hires = HiresFix{1.5f, 3, 0.7f, "lanczos"};
  const GenerationResult hires = pipe->generate(o);
  GenerateOptions second = test::lanczos_hires_by_hand(*pipe, o);
  EXPECT_EQ(pipe->generate(second).images[0].rgb, hires.images[0].rgb);
  second.controlnets.clear();  // without it in the second pass: another image
  EXPECT_NE(pipe->generate(second).images[0].rgb, hires.images[0].rgb);
}
