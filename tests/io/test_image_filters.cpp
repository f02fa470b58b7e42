// gaussian_blur and to_grayscale against Pillow: every byte of
// image.filter(ImageFilter.GaussianBlur(r)) and image.convert("L"). The references are made by
// tests/io/data/make_filter_refs.py; the mask blur is also checked against diffusers'
// mask_processor.blur output (tests/data/reference/inputs/inpaint-mask-blur4.png).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>

#include "common/fixtures.h"
#include "diffuse/error.hpp"
#include "io/image_filters.h"
#include "io/png_image.h"
#include "io/safetensors.h"

using namespace diffuse;

namespace {

const std::filesystem::path kHere = std::filesystem::path(__FILE__).parent_path();

SafetensorsFile refs() {
  return SafetensorsFile::open((kHere / "data" / "filter_refs.safetensors").string());
}

std::vector<uint8_t> bytes_of_in_image_filters(const SafetensorsFile& f, const std::string& name) {
  const Tensor t = f.get(name);
  EXPECT_EQ(t.dtype(), DType::U8) << name;
  std::vector<uint8_t> out(t.nbytes());
  std::memcpy(out.data(), t.raw(), t.nbytes());
  return out;
}

Rgb8Image image_of(const SafetensorsFile& f, const std::string& name) {
  const Tensor t = f.get(name);
  return {static_cast<int>(t.dim(1)), static_cast<int>(t.dim(0)),
          bytes_of_in_image_filters(f, name)};
}

size_t mismatches(const std::vector<uint8_t>& ours, const std::vector<uint8_t>& ref) {
  EXPECT_EQ(ours.size(), ref.size());
  size_t n = 0;
  for (size_t i = 0; i < std::min(ours.size(), ref.size()); ++i) n += ours[i] != ref[i];
  return n;
}

}  // namespace

TEST(image_filters, gaussian_blur_matches_pillow) {
  const auto f = refs();
  int cases = 0;
  for (const auto& [key, value] : f.metadata()) {
    if (key.rfind("case/", 0) != 0) continue;
    ++cases;
    const std::string name = key.substr(5);
    const size_t comma = value.find(',');
    const Rgb8Image src = image_of(f, "src/" + value.substr(0, comma));
    const float radius = std::stof(value.substr(comma + 1));
    const Rgb8Image ours = gaussian_blur(src, radius);
    EXPECT_EQ(mismatches(ours.pixels, bytes_of_in_image_filters(f, "blur/" + name)), 0u) << name;
  }
  EXPECT_GE(cases, 8);
}

TEST(image_filters, grayscale_matches_pillow) {
  const auto f = refs();
  for (const char* name : {"a128x128", "b37x29", "c1x40"}) {
    const Rgb8Image src = image_of(f, std::string("src/") + name);
    EXPECT_EQ(
        mismatches(to_grayscale(src), bytes_of_in_image_filters(f, std::string("gray/") + name)),
        0u)
        << name;
  }
}

TEST(image_filters, mask_blur_matches_diffusers_mask_processor) {
  const auto root = kHere.parent_path();
  const Rgb8Image mask = read_png(test::fixture("golden/inpaint-mask.png"));
  const Rgb8Image ref = read_png((root / "data/reference/inputs/inpaint-mask-blur4.png").string());
  EXPECT_EQ(mismatches(gaussian_blur(mask, 4.f).pixels, ref.pixels), 0u);
}

TEST(image_filters, zero_radius_copies_and_bad_radius_is_refused) {
  const Rgb8Image im{2, 1, {1, 2, 3, 4, 5, 6}};
  EXPECT_EQ(gaussian_blur(im, 0.f).pixels, im.pixels);
  EXPECT_THROW(gaussian_blur(im, -1.f), ConfigError);
  EXPECT_THROW(gaussian_blur(im, std::nanf("")), ConfigError);
}
