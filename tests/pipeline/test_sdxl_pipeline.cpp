// SDXL beyond the whole-pipeline golden (test_pipeline_golden.cpp): its prompt encoding against
// diffusers' encode_prompt, the negative-prompt and micro-conditioning semantics, and the errors
// an SDXL folder or option can produce.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "backend/ops.h"
#include "common/fixtures.h"
#include "diffuse/diffuse.hpp"
#include "pipeline/model_folder.h"
#include "pipeline/stages.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

const char* kPrompt = "a photo of an astronaut riding a horse on mars";

std::vector<int64_t> row(const Tensor& ids, int64_t i) {
  const int64_t* p = ids.data_as<int64_t>() + i * ids.dim(1);
  return {p, p + ids.dim(1)};
}

// hidden_states[-2] of prompt `item` from a [layers + 1, B, L, H] reference.
Tensor penultimate(const Tensor& states, int64_t item) {
  return states.narrow(0, states.dim(0) - 2, 1)
      .contiguous()
      .reshape({states.dim(1), states.dim(2), states.dim(3)})
      .narrow(0, item, 1)
      .contiguous();
}

GenerateOptions quick_options_in_sdxl_pipeline() {
  GenerateOptions o;
  o.prompt = kPrompt;
  o.steps = 2;
  o.guidance_scale = 5.f;
  o.seed = 3;
  return o;
}

// The float pixels of one generation.
std::vector<float> pixels(Pipeline& pipe, const GenerateOptions& o) {
  return pipe.generate(o).images.at(0).rgb;
}

void edit_model_index(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  auto index = nlohmann::json::parse(std::ifstream(dir + "/model_index.json"));
  edit(index);
  std::ofstream(dir + "/model_index.json") << index.dump(2);
}

}  // namespace

TEST(sdxl, encode_prompt_matches_diffusers) {
  const StableDiffusionXLModel m =
      load_stable_diffusion_xl_folder(test::fixture("models/tiny-sdxl"));
  EXPECT_TRUE(m.force_zeros_for_empty_prompt);
  EXPECT_EQ(m.base.family, "sdxl");
  const SafetensorsFile g = test::golden("tiny-sdxl-components.safetensors");
  // tokenizer_2 pads with "!", tokenizer with <|endoftext|>.
  const Tensor ids = g.get("input_ids"), ids_2 = g.get("input_ids_2");
  EXPECT_EQ(m.base.tokenizer.encode_padded(kPrompt).input_ids, row(ids, 0));
  EXPECT_EQ(m.base.tokenizer.encode_padded("").input_ids, row(ids, 1));
  EXPECT_EQ(m.tokenizer_2.encode_padded(kPrompt).input_ids, row(ids_2, 0));
  EXPECT_EQ(m.tokenizer_2.encode_padded("").input_ids, row(ids_2, 1));

  const auto cond =
      stages::encode_prompt_xl(&m.base, m.tokenizer_2, m.text_encoder_2, kPrompt, 0, kCpu);
  const double e_embeds = test::rel_error(cond.prompt_embeds, g.get("prompt_embeds"));
  const double e_pooled = test::rel_error(cond.pooled_prompt_embeds, g.get("pooled_prompt_embeds"));
  // An explicit "" is encoded (no zeros): both encoders' penultimate states of "", side by side.
  const auto empty =
      stages::encode_prompt_xl(&m.base, m.tokenizer_2, m.text_encoder_2, "", 0, kCpu);
  const Tensor expected_empty = ops::concat(penultimate(g.get("te1_hidden_states"), 1),
                                            penultimate(g.get("te2_hidden_states"), 1), 2);
  const double e_empty = test::rel_error(empty.prompt_embeds, expected_empty);
  const double e_empty_pooled = test::rel_error(
      empty.pooled_prompt_embeds, g.get("te2_text_embeds").narrow(0, 1, 1).contiguous());
  std::cout << "tiny-sdxl encode_prompt rel error: prompt_embeds " << e_embeds << ", pooled "
            << e_pooled << ", \"\" " << e_empty << " / " << e_empty_pooled << "\n";
  EXPECT_LT(e_embeds, 1e-4);
  EXPECT_LT(e_pooled, 1e-4);
  EXPECT_LT(e_empty, 1e-4);
  EXPECT_LT(e_empty_pooled, 1e-4);
  // clip skip 1 conditions on one layer earlier: hidden_states[-3].
  const auto skipped =
      stages::encode_prompt_xl(&m.base, m.tokenizer_2, m.text_encoder_2, kPrompt, 1, kCpu);
  const Tensor te1 = g.get("te1_hidden_states");
  EXPECT_LT(test::rel_error(skipped.prompt_embeds.narrow(2, 0, 32).contiguous(),
                            te1.narrow(0, 1, 1).contiguous().reshape({2, 77, 32}).narrow(0, 0, 1)),
            1e-4);
}

TEST(sdxl, add_time_ids_order) {
  const Tensor ids = stages::add_time_ids({96, 128}, {8, 16}, {64, 32}, kCpu);
  EXPECT_EQ(ids.to_vector(), std::vector<float>({96, 128, 8, 16, 64, 32}));
}

TEST(sdxl, absent_negative_prompt_is_zeros_explicit_empty_is_encoded) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  GenerateOptions o = quick_options_in_sdxl_pipeline();
  const auto absent = pixels(*pipe, o);
  o.negative_prompt = "";
  const auto empty = pixels(*pipe, o);
  EXPECT_NE(absent, empty);
  // Without force_zeros_for_empty_prompt, no negative prompt means "" (as in SD pipelines).
  const std::string dir = test::writable_model_copy("tiny-sdxl", "sdxl-no-zeros");
  edit_model_index(dir, [](nlohmann::json& j) { j["force_zeros_for_empty_prompt"] = false; });
  auto encoded = Pipeline::load(dir);
  EXPECT_EQ(pixels(*encoded, o), empty);
  o.negative_prompt.reset();
  EXPECT_EQ(pixels(*encoded, o), empty);
}

TEST(sdxl, size_conditions_default_to_the_image_size) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  GenerateOptions o = quick_options_in_sdxl_pipeline();
  o.width = 96;
  o.height = 64;
  const GenerationResult r = pipe->generate(o);
  ASSERT_TRUE(r.options.original_size && r.options.target_size && r.options.crop_coords);
  for (const SizeHW& s : {*r.options.original_size, *r.options.target_size}) {
    EXPECT_EQ(s.height, 64);
    EXPECT_EQ(s.width, 96);
  }
  EXPECT_EQ(r.options.crop_coords->top, 0);
  EXPECT_EQ(r.options.crop_coords->left, 0);
  EXPECT_TRUE(r.warnings.empty());
  // Spelling the defaults out changes nothing; a negative_original_size equal to the default
  // gives the unconditional half the time ids it had anyway.
  GenerateOptions same = o;
  same.original_size = SizeHW{64, 96};
  same.target_size = SizeHW{64, 96};
  same.crop_coords = CropTopLeft{0, 0};
  same.negative_original_size = SizeHW{64, 96};
  EXPECT_EQ(pixels(*pipe, same), r.images[0].rgb);
  // Each condition reaches the UNet.
  for (int which = 0; which < 4; ++which) {
    GenerateOptions c = o;
    if (which == 0) c.original_size = SizeHW{512, 512};
    if (which == 1) c.target_size = SizeHW{64, 32};
    if (which == 2) c.crop_coords = CropTopLeft{16, 0};
    if (which == 3) c.negative_original_size = SizeHW{256, 256};
    EXPECT_NE(pixels(*pipe, c), r.images[0].rgb) << "condition " << which;
  }
}

TEST(sdxl, size_conditions_on_other_models_are_a_warning) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o = quick_options_in_sdxl_pipeline();
  const auto plain = pipe->generate(o);
  o.original_size = SizeHW{1024, 1024};
  const auto r = pipe->generate(o);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("SDXL"), std::string::npos) << r.warnings[0];
  EXPECT_EQ(r.images[0].rgb, plain.images[0].rgb);
}

TEST(sdxl, bad_options_are_named_before_generating) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  int steps = 0;
  const auto expect_error = [&](const GenerateOptions& o, const std::vector<std::string>& words) {
    test::expect_error_mentioning<ConfigError>(
        [&] { pipe->generate(o, [&](const Progress&) { return ++steps > 0; }); }, words);
  };
  GenerateOptions o = quick_options_in_sdxl_pipeline();
  o.width = 100;
  expect_error(o, {"width 100", "multiple of 8"});
  o = quick_options_in_sdxl_pipeline();
  o.height = 60;
  expect_error(o, {"height 60", "multiple of 8"});
  o = quick_options_in_sdxl_pipeline();
  o.original_size = SizeHW{0, 512};
  expect_error(o, {"original size"});
  o = quick_options_in_sdxl_pipeline();
  o.negative_original_size = SizeHW{512, -1};
  expect_error(o, {"negative original size"});
  o = quick_options_in_sdxl_pipeline();
  o.crop_coords = CropTopLeft{-8, 0};
  expect_error(o, {"crop coordinates"});
  o = quick_options_in_sdxl_pipeline();
  o.hires = HiresFix{};
  o.refiner = test::fixture("models/tiny-sdxl");
  expect_error(o, {"hires", "refiner"});
  EXPECT_EQ(steps, 0);
}

TEST(sdxl, folder_without_text_encoder_2_is_named) {
  std::string dir = test::writable_model_copy("tiny-sdxl", "sdxl-no-te2-folder");
  fs::remove_all(dir + "/text_encoder_2");
  test::expect_error_mentioning<FileError>([&] { Pipeline::load(dir); }, {"text_encoder_2"});
  dir = test::writable_model_copy("tiny-sdxl", "sdxl-no-te2-entry");
  edit_model_index(dir, [](nlohmann::json& j) { j.erase("text_encoder_2"); });
  test::expect_error_mentioning<ConfigError>([&] { Pipeline::load(dir); },
                                             {"text_encoder_2", "model_index.json"});
  dir = test::writable_model_copy("tiny-sdxl", "sdxl-te2-class");
  edit_model_index(dir, [](nlohmann::json& j) {
    j["text_encoder_2"] = {"transformers", "CLIPTextModel"};
  });
  test::expect_error_mentioning<ConfigError>([&] { Pipeline::load(dir); },
                                             {"text_encoder_2", "CLIPTextModel"});
}

TEST(sdxl, inconsistent_components_are_config_errors) {
  const std::string dir = test::writable_model_copy("tiny-sdxl", "sdxl-bad-unet");
  const std::string unet_config = dir + "/unet/config.json";
  auto config = nlohmann::json::parse(std::ifstream(unet_config));
  config["projection_class_embeddings_input_dim"] = 80;
  std::ofstream(unet_config) << config.dump(2);
  test::expect_error_mentioning<ConfigError>(
      [&] { Pipeline::load(dir); }, {"unet/config.json", "projection_class_embeddings_input_dim"});
  config["projection_class_embeddings_input_dim"] = 72;
  config["addition_embed_type"] = nullptr;
  std::ofstream(unet_config) << config.dump(2);
  test::expect_error_mentioning<ConfigError>([&] { Pipeline::load(dir); },
                                             {"unet/config.json", "text_time"});
}
