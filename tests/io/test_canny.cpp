// canny_edges against OpenCV's cv2.Canny, byte for byte, on photos and a synthetic image with
// every gradient direction, thresholds swapped and fractional
// (tests/data/reference/canny.safetensors, tools/reference/make_preprocessor_references.py).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/fixtures.h"
#include "diffuse/error.hpp"
#include "io/canny.h"
#include "io/safetensors.h"

using namespace diffuse;

namespace {

std::string reference_file() {
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "data" / "reference" /
          "canny.safetensors")
      .string();
}

std::vector<uint8_t> bytes_of(const Tensor& t) {
  EXPECT_EQ(t.dtype(), DType::U8);
  const Tensor c = t.contiguous();
  return std::vector<uint8_t>(c.data_as<uint8_t>(), c.data_as<uint8_t>() + c.numel());
}

}  // namespace

TEST(canny, matches_opencv_byte_for_byte) {
  const SafetensorsFile f = SafetensorsFile::open(reference_file());
  const auto meta = nlohmann::json::parse(f.metadata().at("json"));
  ASSERT_GE(meta.at("cases").size(), 5u);
  for (const auto& [name, c] : meta.at("cases").items()) {
    const Tensor image = f.get(name + ".image");
    const Rgb8Image in{static_cast<int>(image.dim(1)), static_cast<int>(image.dim(0)),
                       bytes_of(image)};
    const Rgb8Image out = canny_edges(in, c.at("low").get<double>(), c.at("high").get<double>());
    const std::vector<uint8_t> want = bytes_of(f.get(name + ".edges"));
    ASSERT_EQ(out.pixels.size(), want.size() * 3) << name;
    size_t differ = 0, edges = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      differ += out.pixels[i * 3] != want[i] || out.pixels[i * 3 + 1] != want[i] ||
                out.pixels[i * 3 + 2] != want[i];
      edges += want[i] != 0;
    }
    EXPECT_EQ(differ, 0u) << name << " (" << edges << " edge pixels in OpenCV's map)";
  }
}

TEST(canny, bad_thresholds_are_named) {
  const Rgb8Image im{4, 4, std::vector<uint8_t>(48, 7)};
  test::expect_error_mentioning<ConfigError>([&] { canny_edges(im, -1, 10); }, {"low"});
  test::expect_error_mentioning<ConfigError>([&] { canny_edges(im, 1, std::nan("")); }, {"high"});
  // A flat image has no edges.
  for (uint8_t v : canny_edges(im, 0, 0).pixels) EXPECT_EQ(v, 0);
}
