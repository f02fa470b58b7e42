// Which weight files a pipeline pull takes per component: one set, safetensors before .bin, the
// variant where asked and present, sharded sets whole.
#include <gtest/gtest.h>

#include <set>

#include "hub/hub_select.h"

using diffuse::hub::select_pipeline_files;

namespace {

std::set<std::string> pick(const std::vector<std::string>& files, const std::string& variant) {
  const nlohmann::json index = {{"_class_name", "StableDiffusionPipeline"},
                                {"unet", {"diffusers", "UNet2DConditionModel"}}};
  const auto s = select_pipeline_files(index, files, variant);
  return {s.files.begin() + 1, s.files.end()};  // without model_index.json
}

}  // namespace

TEST(hub_select, sharded_sets_come_whole_with_their_index) {
  const std::vector<std::string> files = {
      "unet/config.json",
      "unet/diffusion_pytorch_model.safetensors.index.json",
      "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
      "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
      "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
      "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
      "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
      "unet/diffusion_pytorch_model.bin"};
  EXPECT_EQ(pick(files, ""),
            (std::set<std::string>{"unet/config.json",
                                   "unet/diffusion_pytorch_model.safetensors.index.json",
                                   "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
                                   "unet/diffusion_pytorch_model-00002-of-00002.safetensors"}));
  EXPECT_EQ(pick(files, "fp16"),
            (std::set<std::string>{
                "unet/config.json", "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
                "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
                "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors"}));
}

TEST(hub_select, bin_only_without_safetensors_and_never_both) {
  EXPECT_EQ(pick({"unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.fp16.bin",
                  "unet/diffusion_pytorch_model.ckpt", "unet/diffusion_pytorch_model.h5"},
                 "fp16"),
            (std::set<std::string>{"unet/diffusion_pytorch_model.fp16.bin"}));
  EXPECT_EQ(
      pick({"unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.safetensors"}, ""),
      (std::set<std::string>{"unet/diffusion_pytorch_model.safetensors"}));
  EXPECT_EQ(
      pick({"unet/diffusion_pytorch_model.fp16.bin", "unet/diffusion_pytorch_model.safetensors"},
           "fp16"),
      (std::set<std::string>{"unet/diffusion_pytorch_model.safetensors"}));
}

TEST(hub_select, a_component_with_only_a_variant_takes_it) {
  const auto s = select_pipeline_files(
      {{"unet", {"diffusers", "UNet2DConditionModel"}}},
      {"unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.onnx"}, "");
  EXPECT_EQ(s.files, (std::vector<std::string>{"model_index.json",
                                               "unet/diffusion_pytorch_model.fp16.safetensors"}));
  ASSERT_EQ(s.choices.size(), 1u);
  EXPECT_NE(s.choices[0].find("only the fp16 variant"), std::string::npos) << s.choices[0];
}

TEST(hub_select, null_components_and_nested_folders_are_skipped) {
  const auto s = select_pipeline_files(
      {{"feature_extractor", {nullptr, nullptr}}, {"unet", {"diffusers", "UNet2DConditionModel"}}},
      {"feature_extractor/preprocessor_config.json", "unet/config.json",
       "unet/sub/diffusion_pytorch_model.safetensors"},
      "");
  EXPECT_EQ(s.files, (std::vector<std::string>{"model_index.json", "unet/config.json"}));
}

TEST(hub_select, choices_say_what_each_component_gets) {
  const auto s = select_pipeline_files(
      {{"unet", {"diffusers", "UNet2DConditionModel"}},
       {"scheduler", {"diffusers", "PNDMScheduler"}}},
      {"unet/config.json", "unet/diffusion_pytorch_model.ckpt", "scheduler/scheduler_config.json"},
      "");
  EXPECT_EQ(s.choices,
            (std::vector<std::string>{"scheduler: scheduler_config.json",
                                      "unet: no safetensors or .bin weights + config.json"}));
}

TEST(hub_select, include_globs_match_as_fnmatch) {
  const std::vector<std::string> files = {"a.safetensors", "unet/b.safetensors", "unet/c.json"};
  EXPECT_EQ(diffuse::hub::select_matching(files, {"*.safetensors"}),
            (std::vector<std::string>{"a.safetensors", "unet/b.safetensors"}));
  EXPECT_EQ(diffuse::hub::select_matching(files, {"unet/"}),
            (std::vector<std::string>{"unet/b.safetensors", "unet/c.json"}));
  EXPECT_EQ(diffuse::hub::select_matching(files, {"unet/*.json", "a.*"}),
            (std::vector<std::string>{"a.safetensors", "unet/c.json"}));
}
