// `diffuse generate` on an SDXL folder: the golden image from the command line, the SDXL
// micro-conditioning flags, the refiner flags, and their errors.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/command.h"
#include "common/fixtures.h"
#include "common/reference_data.h"
#include "diffuse/diffuse.hpp"

namespace fs = std::filesystem;

namespace {

using diffuse::test::CommandResult;

CommandResult run_in_cli_sdxl(const std::string& args) {
  return diffuse::test::run_diffuse(args);
}

std::string tiny_sdxl() {
  return diffuse::test::fixture("models/tiny-sdxl");
}
// The golden call's arguments (pipe-sdxl-txt2img: Euler from the folder, 8 steps, guidance 5,
// 128x128 = the model's default size, seed 3, no negative prompt).
std::string golden_args() {
  return "generate --model " + tiny_sdxl() +
         " --prompt 'a photo of an astronaut riding a horse on mars' --steps 8 "
         "--guidance-scale 5 --seed 3";
}

// Fraction of the 8-bit values of `png` within one level of the golden PNG.
double fraction_close_to_golden(const std::string& png) {
  const diffuse::Image ours = diffuse::load_png(png);
  const diffuse::Image ref = diffuse::load_png(diffuse::test::fixture("golden/sdxl-txt2img-0.png"));
  const auto a = ours.to_rgb8(), b = ref.to_rgb8();
  if (a.size() != b.size()) return 0;
  size_t close = 0;
  for (size_t i = 0; i < a.size(); ++i) close += std::abs(int(a[i]) - int(b[i])) <= 1;
  return double(close) / double(a.size());
}

void expect_failure_in_cli_sdxl(const std::string& args, const std::vector<std::string>& fragments,
                                const std::string& output) {
  const CommandResult r = run_in_cli_sdxl(args + " -o " + output);
  EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
  const size_t at = r.err.find("error: ");
  ASSERT_NE(at, std::string::npos) << r.err;
  // The error is the last thing printed, on one line.
  EXPECT_EQ(r.err.find('\n', at), r.err.size() - 1) << r.err;
  for (const auto& f : fragments) EXPECT_NE(r.err.find(f), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(output)) << "output written for " << args;
}

}  // namespace

TEST(cli_sdxl, generate_reproduces_the_diffusers_png) {
  const std::string out = diffuse::test::temp_path("sdxl.png");
  const CommandResult r = run_in_cli_sdxl(golden_args() + " --json -o " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("width"), 128);
  EXPECT_EQ(j.at("scheduler"), "EulerDiscreteScheduler");
  EXPECT_TRUE(j.at("warnings").empty()) << j.dump();
  EXPECT_GE(fraction_close_to_golden(out), 0.999);
  const CommandResult info = run_in_cli_sdxl("info " + out);
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("Seed: 3"), std::string::npos) << info.out;
}

TEST(cli_sdxl, size_condition_flags_reach_the_model) {
  // The defaults spelled out reproduce the golden image; other sizes condition it differently.
  const std::string same = diffuse::test::temp_path("sdxl-defaults.png");
  CommandResult r =
      run_in_cli_sdxl(golden_args() +
                      " --original-size 128x128 --target-size 128x128 --crop-coords 0,0 "
                      "--negative-original-size 128x128 -o " +
                      same);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_GE(fraction_close_to_golden(same), 0.999);
  const std::string moved = diffuse::test::temp_path("sdxl-conditioned.png");
  r = run_in_cli_sdxl(golden_args() + " --original-size 1024x768 --crop-coords 32,0 -o " + moved);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_LT(fraction_close_to_golden(moved), 0.999);
}

TEST(cli_sdxl, bad_sizes_and_folders_are_one_line_errors) {
  const std::string out = diffuse::test::temp_path("sdxl-bad.png");
  expect_failure_in_cli_sdxl(golden_args() + " --original-size 1024",
                             {"--original-size", "WIDTHxHEIGHT"}, out);
  expect_failure_in_cli_sdxl(golden_args() + " --negative-original-size 0x512",
                             {"negative original size"}, out);
  expect_failure_in_cli_sdxl(golden_args() + " --crop-coords 3x4", {"--crop-coords", "TOP,LEFT"},
                             out);
  expect_failure_in_cli_sdxl(golden_args() + " --width 100", {"width 100", "multiple of 8"}, out);
  const std::string dir = diffuse::test::writable_model_copy("tiny-sdxl", "cli-sdxl-no-te2");
  fs::remove_all(dir + "/text_encoder_2");
  expect_failure_in_cli_sdxl("generate --model " + dir + " --prompt x --steps 1",
                             {"text_encoder_2"}, out);
}

TEST(cli_sdxl, refiner_flags_run_the_ensemble_and_the_refiner) {
  const std::string refiner = diffuse::test::assemble_tiny_sdxl_refiner(
      fs::path(diffuse::test::temp_dir()) / "cli-tiny-refiner");
  const std::string refined = diffuse::test::temp_path("sdxl-refined.png");
  CommandResult r = run_in_cli_sdxl(
      "generate --model " + tiny_sdxl() + " --refiner " + refiner +
      " --high-noise-frac 0.7 --prompt horse --steps 4 -W 64 -H 64 --seed 5 -o " + refined);
  ASSERT_EQ(r.code, 0) << r.err;
  const CommandResult info = run_in_cli_sdxl("info " + refined);
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("Refiner: cli-tiny-refiner, Refiner switch at: 0.7"), std::string::npos)
      << info.out;
  // The refiner alone refines an image, with aesthetic scores; from noise it cannot start.
  r = run_in_cli_sdxl(
      "generate --model " + refiner + " --image " + refined +
      " --prompt horse --steps 4 --aesthetic-score 7 --negative-aesthetic-score 2 -o " +
      diffuse::test::temp_path("sdxl-refiner-only.png"));
  EXPECT_EQ(r.code, 0) << r.err;
  const std::string out = diffuse::test::temp_path("sdxl-refiner-bad.png");
  expect_failure_in_cli_sdxl("generate --model " + refiner + " --prompt horse --steps 2",
                             {"refiner", "noise"}, out);
  expect_failure_in_cli_sdxl(golden_args() + " --high-noise-frac 0.5",
                             {"--high-noise-frac", "--refiner"}, out);
  expect_failure_in_cli_sdxl(golden_args() + " --refiner " + refiner + " --high-noise-frac 1.5",
                             {"high noise fraction"}, out);
  expect_failure_in_cli_sdxl(golden_args() + " --refiner " + refiner + "-missing", {"-missing"},
                             out);
}

TEST(cli_sdxl, synth_writes_both_text_encoders) {
  const std::string out = diffuse::test::temp_dir() + "/synth-sdxl";
  fs::remove_all(out);
  CommandResult r = run_in_cli_sdxl("synth --config " + tiny_sdxl() + " --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* f : {"text_encoder_2/model.safetensors", "tokenizer_2/vocab.json",
                        "tokenizer_2/tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
  r = run_in_cli_sdxl("generate --model " + out + " --prompt x --steps 1 -W 64 -H 64 -o " +
                      diffuse::test::temp_path("synth-sdxl.png"));
  EXPECT_EQ(r.code, 0) << r.err;
}
