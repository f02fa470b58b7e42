#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "common/fixtures.h"
#include "diffuse/error.hpp"
#include "io/png_image.h"

using namespace diffuse;

TEST(png, round_trip_keeps_pixels_and_text) {
  Rgb8Image img{5, 3, {}};
  for (int i = 0; i < 5 * 3 * 3; ++i) img.pixels.push_back(static_cast<uint8_t>(i * 7));
  const std::string path = test::temp_dir() + "/rt.png";
  write_png(path, img, {{"parameters", "a cat\nSteps: 20, Seed: 1"}});
  std::map<std::string, std::string> text;
  Rgb8Image back = read_png(path, &text);
  EXPECT_EQ(back.width, 5);
  EXPECT_EQ(back.height, 3);
  EXPECT_EQ(back.pixels, img.pixels);
  EXPECT_EQ(text.at("parameters"), "a cat\nSteps: 20, Seed: 1");
}

TEST(png, inconsistent_buffer_is_refused_and_nothing_written) {
  const std::string path = test::temp_dir() + "/bad.png";
  std::remove(path.c_str());
  EXPECT_THROW(write_png(path, Rgb8Image{4, 4, std::vector<uint8_t>(10)}), FileError);
  EXPECT_FALSE(std::ifstream(path).good());
}

TEST(png, random_corruption_never_crashes) {
  std::ifstream in(test::fixture("golden/img2img-init.png"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::mt19937 rng(99);
  const std::string path = test::temp_dir() + "/fuzz.png";
  int ok = 0, rejected = 0;
  for (int iter = 0; iter < 500; ++iter) {
    std::string m = bytes;
    const size_t pos = rng() % m.size();
    if (rng() % 2) {
      m[pos] = static_cast<char>(rng());
    } else {
      m.resize(pos);
    }
    std::ofstream(path, std::ios::binary | std::ios::trunc) << m;
    try {
      Rgb8Image r = read_png(path);
      EXPECT_EQ(r.pixels.size(), size_t(r.width) * size_t(r.height) * 3);
      ++ok;
    } catch (const FileError& e) {
      EXPECT_NE(std::string(e.what()).find("fuzz.png"), std::string::npos);
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_EQ(ok + rejected, 500);
}
