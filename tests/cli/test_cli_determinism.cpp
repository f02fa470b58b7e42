// The same seed gives the same image: bit for bit at any --threads, and within one 8-bit level on
// every instruction set oneDNN (the GEMMs and convolutions) can be limited to on this CPU. The
// element-wise kernels compute the same bits on every set (test_vector_kernels.cpp); oneDNN's
// GEMM kernels sum in an order of their own per instruction set, which is the one-level difference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/command.h"
#include "common/fixtures.h"
#include "io/png_image.h"

namespace fs = std::filesystem;
using diffuse::test::CommandResult;
using diffuse::test::fixture;
using diffuse::test::run_diffuse;

namespace {

/// The pixels of `diffuse generate` on tiny-sd1 (4 DPM++ steps, float32) with `threads` threads
/// and, when `isa` is not empty, oneDNN limited to that instruction set.
diffuse::Rgb8Image generate(int threads, const std::string& isa) {
  const std::string out = diffuse::test::temp_dir() + "/determinism-" + std::to_string(threads) +
                          "-" + (isa.empty() ? "default" : isa) + ".png";
  fs::remove(out);
  const CommandResult r =
      run_diffuse("generate --model " + fixture("models/tiny-sd1") +
                      " --prompt 'a lighthouse at dusk' --steps 4 --scheduler dpmpp-2m --seed 31"
                      " --threads " +
                      std::to_string(threads) + " -o " + out,
                  isa.empty() ? "" : "ONEDNN_MAX_CPU_ISA=" + isa);
  EXPECT_EQ(r.code, 0) << r.err;
  return diffuse::read_png(out);
}

}  // namespace

TEST(determinism, float32_images_are_identical_at_any_thread_count) {
  const diffuse::Rgb8Image one = generate(1, ""), two = generate(2, ""), three = generate(3, "");
  ASSERT_FALSE(one.pixels.empty());
  EXPECT_EQ(one.pixels, two.pixels);
  EXPECT_EQ(one.pixels, three.pixels);
}

TEST(determinism, instruction_sets_differ_by_at_most_one_level_in_few_pixels) {
  const diffuse::Rgb8Image best = generate(2, "");
  ASSERT_FALSE(best.pixels.empty());
  // Sets this CPU lacks are capped by oneDNN to what it has, which only repeats a case.
  for (const std::string isa : {"SSE41", "AVX", "AVX2"}) {
    SCOPED_TRACE(isa);
    const diffuse::Rgb8Image limited = generate(2, isa);
    ASSERT_EQ(limited.pixels.size(), best.pixels.size());
    int max_difference = 0;
    size_t differing = 0;
    for (size_t i = 0; i < best.pixels.size(); ++i) {
      const int d = std::abs(int(best.pixels[i]) - int(limited.pixels[i]));
      max_difference = std::max(max_difference, d);
      differing += d != 0;
    }
    EXPECT_LE(max_difference, 1);
    EXPECT_LE(differing, best.pixels.size() / 1000) << differing << " of " << best.pixels.size();
    // Thread counts stay bit-identical under a limited set too.
    EXPECT_EQ(generate(1, isa).pixels, limited.pixels);
  }
}
