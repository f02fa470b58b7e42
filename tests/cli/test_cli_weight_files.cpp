// `diffuse info` on models and `--variant` / `--vae` on generate: what a newcomer types.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "common/command.h"
#include "common/fixtures.h"
#include "common/reference_data.h"
#include "diffuse/diffuse.hpp"

namespace fs = std::filesystem;
using diffuse::test::CommandResult;
using diffuse::test::fixture;
using diffuse::test::run_diffuse;

namespace {}  // namespace

TEST(cli_info, describes_folders_checkpoints_and_pngs_in_text_and_json) {
  const CommandResult text = run_diffuse("info " + fixture("models/tiny-sdxl"));
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("StableDiffusionXLPipeline (sdxl)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("text_encoder_2"), std::string::npos) << text.out;

  const CommandResult json = run_diffuse("info --json " + fixture("models/tiny-sd1.ckpt"));
  ASSERT_EQ(json.code, 0) << json.err;
  const nlohmann::json j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["kind"], "single-file checkpoint");
  EXPECT_EQ(j["family"], "sd1");
  EXPECT_EQ(j["components"].size(), 3u);

  const std::string png = diffuse::test::temp_path("info.png");
  ASSERT_EQ(run_diffuse("generate -m " + fixture("models/tiny-sd1") +
                        " -p cat --steps 1 --seed 3 -o " + png)
                .code,
            0);
  const CommandResult png_json = run_diffuse("info --json " + png);
  ASSERT_EQ(png_json.code, 0) << png_json.err;
  const nlohmann::json p = nlohmann::json::parse(png_json.out);
  EXPECT_EQ(p["kind"], "png");
  EXPECT_NE(p["parameters"].get<std::string>().find("Seed: 3"), std::string::npos);
}

TEST(cli_info, what_is_not_a_model_is_one_line_and_exit_1) {
  const std::string missing = diffuse::test::temp_dir() + "/nothing-here";
  const CommandResult r = run_diffuse("info " + missing);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: " + missing + ": not found\n");
}

TEST(cli_weight_files, vae_and_variant_flags_reach_the_library) {
  const std::string plain = diffuse::test::temp_path("plain.png"),
                    replaced = diffuse::test::temp_path("replaced.png");
  const std::string args =
      "generate -m " + fixture("models/tiny-sd1") + " -p cat --steps 2 --seed 4";
  ASSERT_EQ(run_diffuse(args + " -o " + plain).code, 0);
  const CommandResult r =
      run_diffuse(args + " --variant fp16 --vae " +
                  diffuse::test::reference("inputs/vae-fp16-variant") + " -o " + replaced);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(diffuse::load_png(plain).to_rgb8(), diffuse::load_png(replaced).to_rgb8());

  const CommandResult bad =
      run_diffuse(args + " --vae /no/such/vae -o " + diffuse::test::temp_path("bad.png"));
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("error: /no/such/vae: VAE not found"), std::string::npos) << bad.err;
  const CommandResult variant =
      run_diffuse(args + " --variant 'a/b' -o " + diffuse::test::temp_path("bad.png"));
  EXPECT_EQ(variant.code, 1);
  EXPECT_NE(variant.err.find("variant: 'a/b'"), std::string::npos) << variant.err;
}

TEST(cli_convert, convert_verify_and_generate_from_the_package) {
  const std::string pkg = diffuse::test::temp_dir() + "/cli-package";
  fs::remove_all(pkg);
  const CommandResult r = run_diffuse("convert " + fixture("models/tiny-sd1") + " -o " + pkg +
                                      " --precision int8 --vae-precision f32 --chunk 2 "
                                      "--attention flash --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json report = nlohmann::json::parse(r.out);
  ASSERT_EQ(report["components"].size(), 3u);
  for (const auto& c : report["components"])
    EXPECT_EQ(c["precision"], c["name"] == "vae" ? "f32" : "int8") << c.dump();
  EXPECT_NE(r.err.find("unet"), std::string::npos);  // the progress lines
  const CommandResult verified = run_diffuse("verify " + pkg);
  EXPECT_EQ(verified.code, 0) << verified.err;
  const std::string png = diffuse::test::temp_path("from-package.png");
  EXPECT_EQ(run_diffuse("generate -m " + pkg + " -p cat --steps 2 -o " + png).code, 0);
  EXPECT_TRUE(fs::exists(png));
  const CommandResult info = run_diffuse("info " + pkg);
  EXPECT_NE(info.out.find("diffuse package (int8, flash attention)"), std::string::npos)
      << info.out;
  const CommandResult overridden =
      run_diffuse("generate -m " + pkg + " -p cat --steps 1 --attention standard -o " + png);
  EXPECT_EQ(overridden.code, 0) << overridden.err;
  const CommandResult unknown =
      run_diffuse("generate -m " + pkg + " -p cat --steps 1 --attention ring -o " + png);
  EXPECT_EQ(unknown.code, 1);
  EXPECT_NE(unknown.err.find("attention: unknown 'ring'"), std::string::npos) << unknown.err;

  // A damaged file: verify names it and exits 1.
  fs::resize_file(pkg + "/vae/diffusion_pytorch_model.safetensors", 64);
  const CommandResult damaged = run_diffuse("verify " + pkg);
  EXPECT_EQ(damaged.code, 1);
  EXPECT_NE(
      damaged.err.find("error: " + pkg + "/vae/diffusion_pytorch_model.safetensors: 64 bytes"),
      std::string::npos)
      << damaged.err;
}

TEST(cli_convert, bad_options_are_one_line_errors_and_leave_nothing) {
  const std::string pkg = diffuse::test::temp_dir() + "/cli-bad-package";
  fs::remove_all(pkg);
  const CommandResult bad =
      run_diffuse("convert " + fixture("models/tiny-sd1") + " -o " + pkg + " --precision fp8");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("error: precision: unknown precision 'fp8'"), std::string::npos)
      << bad.err;
  const CommandResult comp = run_diffuse("convert " + fixture("models/tiny-sd1") + " -o " + pkg +
                                         " --components unet,safety_checker");
  EXPECT_EQ(comp.code, 1);
  EXPECT_NE(comp.err.find("safety_checker"), std::string::npos) << comp.err;
  EXPECT_FALSE(fs::exists(pkg));
  const CommandResult not_pkg = run_diffuse("verify " + fixture("models/tiny-sd1"));
  EXPECT_EQ(not_pkg.code, 1);
  EXPECT_NE(not_pkg.err.find("not a diffuse package"), std::string::npos) << not_pkg.err;
}
