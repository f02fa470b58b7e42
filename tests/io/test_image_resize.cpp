// resize_lanczos against Pillow: every byte of Image.resize((w, h), Image.LANCZOS) on RGB images.
// The references are made by tests/io/data/make_resize_refs.py (Pillow is only needed there).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "diffuse/error.hpp"
#include "io/image_resize.h"
#include "io/safetensors.h"

using namespace diffuse;

namespace {

std::string refs_path() {
  return (std::filesystem::path(__FILE__).parent_path() / "data" / "resize_refs.safetensors")
      .string();
}

Rgb8Image image_of_in_image_resize(const SafetensorsFile& f, const std::string& name) {
  Tensor t = f.get(name);
  EXPECT_EQ(t.dtype(), DType::U8) << name;
  EXPECT_EQ(t.ndim(), 3) << name;
  Rgb8Image im{static_cast<int>(t.dim(1)), static_cast<int>(t.dim(0)), {}};
  im.pixels.resize(t.nbytes());
  std::memcpy(im.pixels.data(), t.raw(), t.nbytes());
  return im;
}

/// Resizes the case's source and compares every byte with Pillow's output.
void expect_matches_pillow(const std::string& name) {
  const auto f = SafetensorsFile::open(refs_path());
  const auto& meta = f.metadata();
  const auto src_name = meta.find("case/" + name);
  ASSERT_NE(src_name, meta.end()) << name;
  const Rgb8Image src = image_of_in_image_resize(f, "src/" + src_name->second);
  const Rgb8Image ref = image_of_in_image_resize(f, "out/" + name);
  const Rgb8Image ours = resize_lanczos(src, ref.width, ref.height);
  ASSERT_EQ(ours.width, ref.width);
  ASSERT_EQ(ours.height, ref.height);
  ASSERT_EQ(ours.pixels.size(), ref.pixels.size());
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < ref.pixels.size(); ++i)
    if (ours.pixels[i] != ref.pixels[i] && mismatches++ == 0) first = i;
  EXPECT_EQ(mismatches, 0u) << name << ": first at byte " << first << " (pixel " << first / 3
                            << ", ours " << int(ours.pixels[first]) << ", Pillow "
                            << int(ref.pixels[first]) << ")";
}

}  // namespace

TEST(image_resize, reference_file_lists_every_case) {
  const auto f = SafetensorsFile::open(refs_path());
  int cases = 0;
  for (const auto& [k, v] : f.metadata())
    if (k.rfind("case/", 0) == 0) {
      ++cases;
      EXPECT_TRUE(f.contains("out/" + k.substr(5))) << k;
      EXPECT_TRUE(f.contains("src/" + v)) << k;
    }
  EXPECT_EQ(cases, 10);
}

TEST(image_resize, downscale_matches_pillow) {
  expect_matches_pillow("down_77x50");
}
TEST(image_resize, strong_downscale_matches_pillow) {
  expect_matches_pillow("down_strong_10x7");
}
TEST(image_resize, upscale_matches_pillow) {
  expect_matches_pillow("up_128x96");
}
TEST(image_resize, mixed_up_and_down_matches_pillow) {
  expect_matches_pillow("mixed_up_down_80x20");
}
TEST(image_resize, vertical_only_matches_pillow) {
  expect_matches_pillow("vertical_only_128x45");
  expect_matches_pillow("up_vertical_only_37x64");
}
TEST(image_resize, horizontal_only_matches_pillow) {
  expect_matches_pillow("horizontal_only_51x128");
}
TEST(image_resize, one_pixel_wide_matches_pillow) {
  expect_matches_pillow("to_one_pixel_wide_1x13");
  expect_matches_pillow("one_pixel_wide_up_6x17");
}
TEST(image_resize, same_size_is_a_copy) {
  expect_matches_pillow("same_size_64x48");
  const auto f = SafetensorsFile::open(refs_path());
  const Rgb8Image src = image_of_in_image_resize(f, "src/d64x48");
  EXPECT_EQ(resize_lanczos(src, 64, 48).pixels, src.pixels);
}

TEST(image_resize, constant_image_stays_constant) {
  // Normalised coefficients sum to one (in fixed point, within rounding): flat stays flat.
  Rgb8Image flat{13, 7, std::vector<uint8_t>(13 * 7 * 3, 200)};
  for (auto [w, h] : {std::pair{40, 3}, std::pair{5, 29}, std::pair{1, 1}}) {
    const Rgb8Image r = resize_lanczos(flat, w, h);
    ASSERT_EQ(r.pixels.size(), size_t(w) * size_t(h) * 3);
    for (uint8_t v : r.pixels) ASSERT_EQ(v, 200) << w << "x" << h;
  }
}

TEST(image_resize, bad_sizes_are_config_errors) {
  Rgb8Image im{4, 4, std::vector<uint8_t>(4 * 4 * 3, 0)};
  EXPECT_THROW(resize_lanczos(im, 0, 4), ConfigError);
  EXPECT_THROW(resize_lanczos(im, 4, -1), ConfigError);
  EXPECT_THROW(resize_lanczos(im, 16385, 4), ConfigError);
  Rgb8Image broken{4, 4, std::vector<uint8_t>(5, 0)};
  EXPECT_THROW(resize_lanczos(broken, 8, 8), ConfigError);
  Rgb8Image empty;
  EXPECT_THROW(resize_lanczos(empty, 8, 8), ConfigError);
}
