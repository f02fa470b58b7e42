// SDXL image-to-image, the refiner, the ensemble of expert denoisers and few-step (Turbo,
// Lightning) generation against diffusers (tests/data/reference, made by
// tools/reference/make_sdxl_refiner_references.py and make_sdxl_few_step_references.py), and the
// errors their options can produce.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/pipeline_check.h"
#include "common/reference_data.h"
#include "diffuse/diffuse.hpp"
#include "io/png_image.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

// The tiny refiner, in a folder of this test's own.
std::string tiny_refiner() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return test::assemble_tiny_sdxl_refiner(fs::path(test::temp_dir()) /
                                          (std::string("refiner-") + info->name()));
}

GenerateOptions options_of(const nlohmann::json& m) {
  GenerateOptions o = test::options_from_metadata(m);
  if (m.contains("image")) o.init_image = load_png(test::reference_input(m, "image"));
  if (m.contains("negative_original_size")) {
    const auto hw = m.at("negative_original_size").get<std::vector<int>>();
    o.negative_original_size = SizeHW{hw.at(0), hw.at(1)};
  }
  if (m.contains("aesthetic_score")) o.aesthetic_score = m.at("aesthetic_score").get<float>();
  if (m.contains("negative_aesthetic_score"))
    o.negative_aesthetic_score = m.at("negative_aesthetic_score").get<float>();
  if (m.contains("high_noise_frac")) o.high_noise_frac = m.at("high_noise_frac").get<float>();
  if (m.contains("timestep_spacing")) o.timestep_spacing = m.at("timestep_spacing");
  return o;
}

void check_case_in_sdxl_references(Pipeline& pipe, GenerateOptions o, const std::string& name) {
  const nlohmann::json meta = test::reference_metadata(name);
  std::vector<std::string> pngs;
  for (int n = 0; n < o.image_count; ++n)
    pngs.push_back(test::reference(name + "-" + std::to_string(n) + ".png"));
  test::check_pipeline_reference(pipe, o, test::reference("pipe-" + name + ".safetensors"), pngs,
                                 name);
}

GenerateOptions quick_options_in_sdxl_references() {
  GenerateOptions o;
  o.prompt = "a photo of an astronaut riding a horse on mars";
  o.steps = 4;
  o.guidance_scale = 5.f;
  o.width = o.height = 64;
  return o;
}

Image grey_image() {
  return Image::from_rgb8(64, 64, std::vector<uint8_t>(64 * 64 * 3, 120));
}

}  // namespace

TEST(sdxl_refiner, base_model_image_to_image_matches_diffusers) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  const std::string name = "sdxl-img2img-euler";
  check_case_in_sdxl_references(*pipe, options_of(test::reference_metadata(name)), name);
}

TEST(sdxl_refiner, refiner_on_an_image_matches_diffusers) {
  auto pipe = Pipeline::load(tiny_refiner());
  const std::string name = "sdxl-refiner-dpmpp";
  check_case_in_sdxl_references(*pipe, options_of(test::reference_metadata(name)), name);
}

TEST(sdxl_refiner, ensemble_of_experts_matches_diffusers) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  const std::string refiner = tiny_refiner();
  // Ancestral sampling (the generator runs on through the refiner) and a second-order scheduler
  // (the refiner starts after a whole Heun step).
  for (const std::string name : {"sdxl-ensemble-eulera", "sdxl-ensemble-heun"}) {
    GenerateOptions o = options_of(test::reference_metadata(name));
    o.refiner = refiner;
    check_case_in_sdxl_references(*pipe, o, name);
  }
}

TEST(sdxl_few_step, turbo_and_lightning_settings_match_diffusers) {
  // As the model cards run them: trailing timesteps, guidance 0 (no unconditional half).
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  for (const std::string name :
       {"sdxl-turbo-eulera-1step", "sdxl-lightning-euler-4step", "sdxl-turbo-img2img-eulera"})
    check_case_in_sdxl_references(*pipe, options_of(test::reference_metadata(name)), name);
}

TEST(sdxl_refiner, ensemble_progress_counts_both_experts) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  GenerateOptions o = quick_options_in_sdxl_references();
  o.steps = 10;
  o.refiner = tiny_refiner();
  std::vector<std::pair<int, int>> seen;
  const GenerationResult r = pipe->generate(o, [&](const Progress& p) {
    seen.emplace_back(p.step, p.total_steps);
    return true;
  });
  // Euler, 10 leading steps: 8 at or above timestep 200 for the base, 2 for the refiner.
  ASSERT_EQ(seen.size(), 10u);
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].first, static_cast<int>(i) + 1);
    EXPECT_EQ(seen[i].second, 10);
  }
  EXPECT_EQ(r.options.refiner, o.refiner);
  EXPECT_TRUE(r.warnings.empty());
}

TEST(sdxl_refiner, bad_refiner_options_are_named_before_generating) {
  auto base = Pipeline::load(test::fixture("models/tiny-sdxl"));
  const std::string refiner_dir = tiny_refiner();
  auto refiner = Pipeline::load(refiner_dir);
  int steps = 0;
  const auto count = [&](const Progress&) { return ++steps > 0; };
  const auto expect_error = [&](Pipeline& pipe, const GenerateOptions& o,
                                const std::vector<std::string>& words) {
    test::expect_error_mentioning<ConfigError>([&] { pipe.generate(o, count); }, words);
  };
  GenerateOptions o = quick_options_in_sdxl_references();
  expect_error(*refiner, o, {"refiner", "image", "noise"});  // a refiner cannot start from noise
  o.refiner = refiner_dir;
  o.high_noise_frac = 1.f;
  expect_error(*base, o, {"high noise fraction"});
  o.high_noise_frac = 0.f;
  expect_error(*base, o, {"high noise fraction"});
  o = quick_options_in_sdxl_references();
  o.aesthetic_score = std::nanf("");
  expect_error(*base, o, {"aesthetic score"});
  o = quick_options_in_sdxl_references();
  o.init_image = grey_image();
  o.loras = {{test::reference("inputs/lora-peft-tiny-sdxl.safetensors"), 1.f}};
  expect_error(*refiner, o, {"LoRA", "refiner"});
  // A refiner with an SD 1.x base, and a refiner that is not an SDXL folder.
  auto sd1 = Pipeline::load(test::fixture("models/tiny-sd1"));
  o = quick_options_in_sdxl_references();
  o.refiner = refiner_dir;
  expect_error(*sd1, o, {"refiner", "SDXL", "sd1"});
  o.refiner = test::fixture("models/tiny-sd1");
  expect_error(*base, o, {"refiner", "not an SDXL model folder"});
  o.refiner = refiner_dir + "-missing";
  test::expect_error_mentioning<FileError>([&] { base->generate(o, count); },
                                           {"refiner", "-missing"});
  EXPECT_EQ(steps, 0);
}

TEST(sdxl_refiner, aesthetic_scores_without_a_refiner_are_a_warning) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  GenerateOptions o = quick_options_in_sdxl_references();
  o.steps = 1;
  o.aesthetic_score = 7.f;
  const GenerationResult r = pipe->generate(o);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("aesthetic"), std::string::npos) << r.warnings[0];
}

TEST(sdxl_refiner, refiner_folder_with_the_wrong_time_ids_is_named) {
  const std::string dir = tiny_refiner();
  auto index = nlohmann::json::parse(std::ifstream(dir + "/model_index.json"));
  index["requires_aesthetics_score"] = false;
  std::ofstream(dir + "/model_index.json") << index.dump(2);
  test::expect_error_mentioning<ConfigError>(
      [&] { Pipeline::load(dir); },
      {"projection_class_embeddings_input_dim", "requires_aesthetics_score"});
}
