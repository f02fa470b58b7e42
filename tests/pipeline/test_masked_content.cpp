// A1111's masked content (inpainting_fill) for inpainting: the fill against A1111's own
// masking.fill and the latent region against its processing code, byte for byte
// (tests/data/reference/masked-content.safetensors,
// tools/reference/make_masked_content_references.py), and what each mode changes in a run.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/fixtures.h"
#include "common/reference_data.h"
#include "diffuse/diffuse.hpp"
#include "io/safetensors.h"
#include "pipeline/inpainting.h"
#include "pipeline/masked_content.h"

using namespace diffuse;

namespace {

Rgb8Image rgb8_of_in_masked_content(const Tensor& t) {
  EXPECT_EQ(t.dtype(), DType::U8);
  const Tensor c = t.contiguous();
  return Rgb8Image{static_cast<int>(t.dim(1)), static_cast<int>(t.dim(0)),
                   std::vector<uint8_t>(c.data_as<uint8_t>(), c.data_as<uint8_t>() + c.numel())};
}

GenerateOptions masked_run(float strength) {
  GenerateOptions o;
  o.prompt = "a red hat";
  o.seed = 17;
  o.steps = 5;
  o.width = o.height = 128;
  o.scheduler = "euler";
  o.init_image = load_png(test::fixture("golden/img2img-init.png"));
  o.mask_image = load_png(test::fixture("golden/inpaint-mask.png"));
  o.mask_blur = 3;
  o.strength = strength;
  return o;
}

}  // namespace

TEST(masked_content, fill_and_latent_region_match_a1111) {
  const SafetensorsFile f = SafetensorsFile::open(test::reference("masked-content.safetensors"));
  const auto meta = nlohmann::json::parse(f.metadata().at("json"));
  ASSERT_EQ(meta.at("cases").size(), 3u);
  for (const auto& [name, c] : meta.at("cases").items()) {
    const Rgb8Image image = rgb8_of_in_masked_content(f.get(name + ".image")),
                    mask = rgb8_of_in_masked_content(f.get(name + ".mask"));
    const Rgb8Image filled = stages::fill_masked_region(image, mask);
    const Rgb8Image want = rgb8_of_in_masked_content(f.get(name + ".filled"));
    size_t differ = 0;
    for (size_t i = 0; i < want.pixels.size(); ++i) differ += filled.pixels[i] != want.pixels[i];
    EXPECT_EQ(differ, 0u) << name << ": filled values that differ from A1111's";
    const Tensor region_ref = f.get(name + ".latent_region");
    const Tensor region = stages::latent_region(mask, region_ref.dim(0), region_ref.dim(1), kCpu);
    EXPECT_EQ(region.to_vector(), region_ref.to_vector()) << name;
  }
}

TEST(masked_content, each_mode_changes_only_part_way_runs) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o = masked_run(0.6f);
  const std::vector<float> original = pipe->generate(o).images.at(0).rgb;
  std::vector<std::vector<float>> seen{original};
  for (const char* mode : {"fill", "latent-noise", "latent-nothing"}) {
    o.masked_content = mode;
    const std::vector<float> image = pipe->generate(o).images.at(0).rgb;
    for (const auto& other : seen) EXPECT_NE(image, other) << mode;
    seen.push_back(image);
    // At strength 1 the run starts from noise (diffusers): the latent modes change nothing.
    if (std::string(mode) == "fill") continue;
    GenerateOptions full = masked_run(1.f);
    full.masked_content = mode;
    GenerateOptions full_original = masked_run(1.f);
    EXPECT_EQ(pipe->generate(full).images.at(0).rgb, pipe->generate(full_original).images.at(0).rgb)
        << mode;
  }
  // "fill" is the run on the filled image (the same blurred, resized mask).
  o.masked_content = "fill";
  const std::vector<float> filled_run = pipe->generate(o).images.at(0).rgb;
  GenerateOptions by_hand = masked_run(0.6f);
  const Rgb8Image filled = stages::fill_masked_region(
      {128, 128, by_hand.init_image->to_rgb8()},
      stages::mask_at_size(*by_hand.mask_image, 128, 128, by_hand.mask_blur));
  by_hand.init_image = Image::from_rgb8(128, 128, filled.pixels);
  EXPECT_EQ(pipe->generate(by_hand).images.at(0).rgb, filled_run);
}

TEST(masked_content, bad_values_are_named) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o = masked_run(0.6f);
  o.masked_content = "blur";
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); },
                                             {"masked content 'blur'", "latent-noise"});
  GenerateOptions plain;
  plain.prompt = "x";
  plain.masked_content = "fill";
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(plain); },
                                             {"masked content", "mask"});
}
