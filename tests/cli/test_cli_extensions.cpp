// `diffuse generate` with inpainting (--mask), LoRA (--lora) and ControlNet (--controlnet ...):
// each shared golden reproduced from the command line, and the flag errors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/command.h"
#include "common/fixtures.h"
#include "diffuse/diffuse.hpp"

namespace fs = std::filesystem;
using diffuse::test::CommandResult;
using diffuse::test::fixture;

namespace {

const std::string kPrompt = "'a photo of an astronaut riding a horse on mars'";

// Per test: ctest runs this file's tests in parallel processes, two of which write one golden's
// name.
std::string out_path_in_cli_extensions(const std::string& name) {
  const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const std::string p = diffuse::test::temp_dir() + "/" + test + "-" + name;
  fs::remove(p);
  return p;
}

/// Runs `args -o OUT` and returns the fraction of OUT's 8-bit values within one level of the
/// golden PNG `golden`.
double generate_close_to(const std::string& args, const std::string& golden) {
  const std::string out = out_path_in_cli_extensions(golden);
  const CommandResult r = diffuse::test::run_diffuse(args + " -o " + out);
  EXPECT_EQ(r.code, 0) << args << "\n" << r.err;
  if (r.code != 0) return 0;
  const auto a = diffuse::load_png(out).to_rgb8();
  const auto b = diffuse::load_png(fixture("golden/" + golden)).to_rgb8();
  if (a.size() != b.size()) return 0;
  size_t close = 0;
  for (size_t i = 0; i < a.size(); ++i) close += std::abs(int(a[i]) - int(b[i])) <= 1;
  return double(close) / double(a.size());
}

void expect_failure_in_cli_extensions(const std::string& args,
                                      const std::vector<std::string>& fragments) {
  const std::string out = out_path_in_cli_extensions("failed.png");
  const CommandResult r = diffuse::test::run_diffuse(args + " -o " + out);
  EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
  for (const auto& f : fragments)
    EXPECT_NE(r.err.find(f), std::string::npos) << "stderr lacks '" << f << "': " << r.err;
  EXPECT_FALSE(fs::exists(out)) << args;
}

}  // namespace

TEST(cli_extensions, inpaint_golden_from_the_command_line) {
  // pipe-inpaint-pndm: the folder's PNDM, 12 steps, seed 4, diffusers' default strength 1.
  EXPECT_GE(generate_close_to("generate --model " + fixture("models/tiny-sd1-inpaint") +
                                  " --prompt " + kPrompt + " --steps 12 --seed 4 --image " +
                                  fixture("golden/img2img-init.png") + " --mask " +
                                  fixture("golden/inpaint-mask.png"),
                              "inpaint-pndm-0.png"),
            0.999);
}

TEST(cli_extensions, lora_golden_from_the_command_line) {
  EXPECT_GE(
      generate_close_to("generate --model " + fixture("models/tiny-sd1") + " --prompt " + kPrompt +
                            " --steps 10 --seed 9 -W 128 -H 128 "
                            "--scheduler DPMSolverMultistepScheduler --lora " +
                            fixture("models/tiny-sd1-lora-kohya.safetensors") + ":1",
                        "lora-kohya-dpmpp-0.png"),
      0.999);
}

TEST(cli_extensions, controlnet_golden_from_the_command_line) {
  EXPECT_GE(
      generate_close_to("generate --model " + fixture("models/tiny-sd1") + " --prompt " + kPrompt +
                            " --steps 10 --seed 6 --scheduler DPMSolverMultistepScheduler "
                            "--controlnet " +
                            fixture("models/tiny-controlnet") + " --control-image " +
                            fixture("golden/img2img-init.png") + " --control-scale 0.8",
                        "controlnet-dpmpp-0.png"),
      0.999);
}

TEST(cli_extensions, flag_errors_name_the_flag) {
  const std::string base =
      "generate --model " + fixture("models/tiny-sd1") + " --prompt x --steps 1 -W 64 -H 64";
  expect_failure_in_cli_extensions(base + " --mask " + fixture("golden/inpaint-mask.png"),
                                   {"--mask", "--image"});
  expect_failure_in_cli_extensions(base + " --mask-blur 3", {"--mask-blur", "--mask"});
  expect_failure_in_cli_extensions(base + " --mask-crop 16", {"--mask-crop", "--mask"});
  expect_failure_in_cli_extensions(base + " --image " + fixture("golden/img2img-init.png") +
                                       " --mask " + fixture("golden/inpaint-mask.png") +
                                       " --mask-crop -3",
                                   {"mask crop padding", "-3"});
  expect_failure_in_cli_extensions(base + " --controlnet " + fixture("models/tiny-controlnet"),
                                   {"--control-image"});
  expect_failure_in_cli_extensions(base + " --control-scale 0.5", {"--controlnet"});
  expect_failure_in_cli_extensions(base + " --controlnet a --controlnet b --control-image " +
                                       fixture("golden/img2img-init.png") + " --control-image " +
                                       fixture("golden/img2img-init.png") +
                                       " --control-scale 1 --control-scale 2 "
                                       "--control-scale 3",
                                   {"--control-scale", "3 times"});
  const std::string controlnet = base + " --controlnet " + fixture("models/tiny-controlnet") +
                                 " --control-image " + fixture("golden/img2img-init.png");
  expect_failure_in_cli_extensions(controlnet + " --control-preprocess sobel",
                                   {"--control-preprocess", "sobel"});
  expect_failure_in_cli_extensions(controlnet + " --control-preprocess canny:100",
                                   {"canny:LOW:HIGH"});
  expect_failure_in_cli_extensions(controlnet + " --control-preprocess canny:a:b",
                                   {"canny:LOW:HIGH"});
  expect_failure_in_cli_extensions(base + " --control-preprocess canny",
                                   {"--control-preprocess", "--controlnet"});
  expect_failure_in_cli_extensions(base + " --lora /nonexistent/style.safetensors:0.5",
                                   {"/nonexistent/style.safetensors"});
  // A 9-channel inpainting model without --mask says what it needs.
  expect_failure_in_cli_extensions(
      "generate --model " + fixture("models/tiny-sd1-inpaint") + " --prompt x",
      {"inpainting model", "mask"});
}

TEST(cli_extensions, lora_tags_in_the_prompt_with_lora_dir) {
  // The golden's LoRA through <lora:NAME:1> and --lora-dir gives the golden image.
  const std::string dir = diffuse::test::temp_dir() + "/cli-loras";
  fs::create_directories(dir);
  fs::copy_file(fixture("models/tiny-sd1-lora-kohya.safetensors"), dir + "/kohya.safetensors",
                fs::copy_options::overwrite_existing);
  EXPECT_GE(generate_close_to("generate --model " + fixture("models/tiny-sd1") +
                                  " --prompt '<lora:kohya:1>a photo of an astronaut riding a "
                                  "horse on mars' --steps 10 --seed 9 -W 128 -H 128 "
                                  "--scheduler DPMSolverMultistepScheduler --lora-dir " +
                                  dir,
                              "lora-kohya-dpmpp-0.png"),
            0.999);
  expect_failure_in_cli_extensions(
      "generate --model " + fixture("models/tiny-sd1") +
          " --prompt 'x <lora:absent:0.5>' --steps 1 -W 64 -H 64 --lora-dir " + dir,
      {"<lora:absent:0.5>", "absent.safetensors"});
}

TEST(cli_extensions, prompt_syntax_flag_reads_a1111_prompts) {
  const std::string base = "generate --model " + fixture("models/tiny-sd1") +
                           " --steps 1 -W 64 -H 64 --seed 4 --prompt '(red:1.3) cube, [table'";
  const std::string a1111 = out_path_in_cli_extensions("a1111.png"),
                    plain = out_path_in_cli_extensions("plain.png");
  CommandResult r = diffuse::test::run_diffuse(base + " --prompt-syntax a1111 -o " + a1111);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: prompt: a bracket without its partner"), std::string::npos)
      << r.err;
  r = diffuse::test::run_diffuse(base + " -o " + plain);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(diffuse::load_png(a1111).to_rgb8(), diffuse::load_png(plain).to_rgb8());
  expect_failure_in_cli_extensions(base + " --prompt-syntax comfy", {"prompt syntax", "comfy"});
}
