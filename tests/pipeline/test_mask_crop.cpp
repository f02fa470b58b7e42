// Inpainting's "only masked" mode (diffusers' padding_mask_crop): the crop region, the "fill" and
// "crop" resizes and the overlay against diffusers' VaeImageProcessor run with Pillow, byte for
// byte (tests/data/reference/mask-crop-ops.safetensors), and whole runs against
// StableDiffusionInpaintPipeline(padding_mask_crop=...) (pipe-inpaint-crop-*). References:
// tools/reference/make_mask_crop_references.py.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/fixtures.h"
#include "common/pipeline_check.h"
#include "common/reference_data.h"
#include "diffuse/diffuse.hpp"
#include "io/safetensors.h"
#include "pipeline/mask_crop.h"

using namespace diffuse;

namespace {

Rgb8Image rgb8_of(const Tensor& t) {
  const Tensor c = t.contiguous();
  EXPECT_EQ(c.dtype(), DType::U8);
  const auto* p = c.data_as<uint8_t>();
  return Rgb8Image{static_cast<int>(t.dim(1)), static_cast<int>(t.dim(0)),
                   std::vector<uint8_t>(p, p + t.numel())};
}

void expect_same_pixels(const Rgb8Image& ours, const Tensor& ref, const std::string& what) {
  const Rgb8Image want = rgb8_of(ref);
  ASSERT_EQ(ours.width, want.width) << what;
  ASSERT_EQ(ours.height, want.height) << what;
  size_t differ = 0;
  for (size_t i = 0; i < want.pixels.size(); ++i) differ += ours.pixels[i] != want.pixels[i];
  EXPECT_EQ(differ, 0u) << what << ": values that differ from Pillow's";
}

}  // namespace

TEST(mask_crop, region_resizes_and_overlay_match_diffusers_and_pillow) {
  const SafetensorsFile f = SafetensorsFile::open(test::reference("mask-crop-ops.safetensors"));
  const auto meta = nlohmann::json::parse(f.metadata().at("json"));
  ASSERT_GE(meta.at("cases").size(), 6u);
  for (const auto& [name, c] : meta.at("cases").items()) {
    const int width = c.at("width"), height = c.at("height"), pad = c.at("pad");
    const Rgb8Image image = rgb8_of(f.get(name + ".image")), mask = rgb8_of(f.get(name + ".mask"));
    const stages::CropBox box = stages::mask_crop_region(mask, width, height, pad);
    const Tensor crop = f.get(name + ".crop").contiguous();
    const std::vector<int64_t> want(crop.data_as<int64_t>(), crop.data_as<int64_t>() + 4);
    EXPECT_EQ((std::vector<int64_t>{box.x1, box.y1, box.x2, box.y2}), want) << name;
    expect_same_pixels(stages::resize_fill(stages::crop(image, box), width, height),
                       f.get(name + ".image_fill"), name + " image fill");
    expect_same_pixels(stages::resize_fill(stages::crop(mask, box), width, height),
                       f.get(name + ".mask_fill"), name + " mask fill");
    expect_same_pixels(stages::apply_overlay(mask, image, rgb8_of(f.get(name + ".generated")), box),
                       f.get(name + ".overlay"), name + " overlay");
  }
}

TEST(mask_crop, black_mask_and_size_mismatch_are_named) {
  const Rgb8Image black{8, 8, std::vector<uint8_t>(8 * 8 * 3, 0)};
  test::expect_error_mentioning<ConfigError>([&] { stages::mask_crop_region(black, 64, 64, 0); },
                                             {"mask", "black"});
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "x";
  o.steps = 1;
  o.mask_crop = 8;
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); }, {"mask crop", "mask"});
  o.init_image = load_png(test::reference("inputs/crop-image-192x144.png"));
  o.mask_image = load_png(test::fixture("golden/inpaint-mask.png"));  // 128x128
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); },
                                             {"mask crop", "128x128", "192x144", "same size"});
  o.mask_image = load_png(test::reference("inputs/crop-mask-wide-192x144.png"));
  o.mask_crop = -1;
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); },
                                             {"mask crop padding", "-1"});
}

TEST(mask_crop, only_masked_inpainting_matches_diffusers) {
  for (const char* name : {"inpaint-crop-ellipse-ddim", "inpaint-crop-wide-euler"}) {
    const nlohmann::json meta = test::reference_metadata(name);
    auto pipe = Pipeline::load(test::fixture("models/" + meta.at("model").get<std::string>()));
    GenerateOptions o = test::options_from_metadata(meta);
    o.init_image = load_png(test::reference_input(meta, "image"));
    o.mask_image = load_png(test::reference_input(meta, "mask_image"));
    o.strength = meta.at("strength").get<float>();
    o.mask_crop = meta.at("padding_mask_crop").get<int>();
    // diffusers only returns PIL images with a crop: the reference's float image is that 8-bit
    // image, so the final comparison is of 8-bit values (within one level; the step latents are
    // held to the usual tolerance).
    const test::PipelineErrors e = test::check_pipeline_reference(
        *pipe, o, test::reference("pipe-" + std::string(name) + ".safetensors"),
        {test::reference(std::string(name) + "-0.png")}, name, /*eight_bit_images=*/true);
    EXPECT_EQ(e.scheduler_class, meta.at("scheduler").get<std::string>());
    // Outside the crop region the original comes back untouched.
    const GenerationResult r = pipe->generate(o);
    const auto crop = meta.at("crop").get<std::vector<int>>();
    const std::vector<uint8_t> out = r.images.at(0).to_rgb8(), in = o.init_image->to_rgb8();
    ASSERT_EQ(r.images[0].width, o.init_image->width);
    size_t outside = 0, changed = 0;
    for (int y = 0; y < r.images[0].height; ++y)
      for (int x = 0; x < r.images[0].width; ++x) {
        if (x >= crop[0] && x < crop[2] && y >= crop[1] && y < crop[3]) continue;
        ++outside;
        const size_t i = (static_cast<size_t>(y) * r.images[0].width + x) * 3;
        changed += out[i] != in[i] || out[i + 1] != in[i + 1] || out[i + 2] != in[i + 2];
      }
    EXPECT_EQ(changed, 0u) << name << " (" << outside << " pixels outside the crop)";
    EXPECT_NE(r.parameters_text(0).find("Inpaint area: Only masked, Masked area padding: " +
                                        std::to_string(*o.mask_crop)),
              std::string::npos);
  }
}
