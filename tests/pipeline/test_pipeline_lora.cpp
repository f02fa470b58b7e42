// LoRA against diffusers' load_lora_weights + set_adapters on tiny-sd1: the shared golden (kohya,
// UNet only, scale 1) and the references of tools/reference/make_extension_references.py (kohya
// at scale 0.6; diffusers/PEFT with a text-encoder part; kohya LoCon with conv, 1x1-conv and
// text-encoder modules and alpha != rank; two LoRAs at once), plus switching LoRAs on one
// pipeline and the errors for files that do not fit.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/fixtures.h"
#include "common/pipeline_check.h"
#include "common/reference_data.h"
#include "diffuse/diffuse.hpp"
#include "io/json_config.h"
#include "io/safetensors.h"

using namespace diffuse;

namespace {

std::vector<LoraSpec> loras_of(const nlohmann::json& meta) {
  std::vector<LoraSpec> loras;
  for (const auto& l : meta.at("loras"))
    loras.push_back(
        {test::reference_input(l.at("file").get<std::string>(), l.at("root").get<std::string>()),
         l.at("scale").get<float>()});
  return loras;
}

void check_lora_case(Pipeline& pipe, const std::string& name) {
  const nlohmann::json meta = test::reference_metadata(name);
  GenerateOptions o = test::options_from_metadata(meta);
  o.loras = loras_of(meta);
  test::check_pipeline_reference(pipe, o, test::reference("pipe-" + name + ".safetensors"),
                                 {test::reference(name + "-0.png")}, name);
}

}  // namespace

TEST(lora, kohya_golden_matches_diffusers) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  const std::string golden = test::fixture("golden/pipe-lora-kohya-dpmpp.safetensors");
  GenerateOptions o = test::options_from_metadata(
      parse_json(SafetensorsFile::open(golden).metadata().at("json"), golden));
  o.loras = {{test::fixture("models/tiny-sd1-lora-kohya.safetensors"), 1.f}};
  test::check_pipeline_reference(*pipe, o, golden, {test::fixture("golden/lora-kohya-dpmpp-0.png")},
                                 "lora-kohya");
}

// One pipeline through every case: each generation switches to another set of LoRAs (the base
// weights are kept, so the results must not depend on what ran before).
TEST(lora, references_in_sequence_on_one_pipeline) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  for (const char* name : {"lora-kohya-scale-dpmpp", "lora-peft-te-euler",
                           "lora-kohya-locon-te-ddim", "lora-two-dpmpp", "lora-kohya-scale-dpmpp"})
    check_lora_case(*pipe, name);
}

TEST(lora, removing_the_lora_restores_the_base_model) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "a horse";
  o.steps = 3;
  o.width = o.height = 64;
  const GenerationResult base = pipe->generate(o);
  o.loras = {{test::reference("inputs/lora-peft-tiny-sd1.safetensors"), 1.f}};
  const GenerationResult adapted = pipe->generate(o);
  EXPECT_NE(adapted.images[0].rgb, base.images[0].rgb);
  o.loras.clear();
  EXPECT_EQ(pipe->generate(o).images[0].rgb, base.images[0].rgb);
}

TEST(lora, files_that_do_not_fit_are_named) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "x";
  o.steps = 1;
  o.width = o.height = 64;
  o.loras = {{test::temp_dir() + "/missing.safetensors", 1.f}};
  test::expect_error_mentioning<FileError>([&] { pipe->generate(o); }, {"missing.safetensors"});
  // A LoRA for a model with other module names matches nothing.
  const std::string foreign = test::temp_dir() + "/foreign-lora.safetensors";
  const float down[4] = {1, 2, 3, 4}, up[4] = {1, 1, 1, 1};
  write_safetensors(
      foreign,
      {{"lora_unet_single_blocks_0_linear1.lora_down.weight", Tensor::from_floats(down, {1, 4})},
       {"lora_unet_single_blocks_0_linear1.lora_up.weight", Tensor::from_floats(up, {4, 1})}});
  o.loras = {{foreign, 1.f}};
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); },
                                             {"foreign-lora", "none of its 1 LoRA modules"});
  // LyCORIS adapters are refused by name.
  const std::string loha = test::temp_dir() + "/loha.safetensors";
  write_safetensors(loha, {{"lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_a",
                            Tensor::from_floats(down, {1, 4})}});
  o.loras = {{loha, 1.f}};
  test::expect_error_mentioning<FileError>([&] { pipe->generate(o); }, {"loha", "LoHa"});
  o.loras = {{test::fixture("models/tiny-sd1-lora-kohya.safetensors"), NAN}};
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); }, {"LoRA scale"});
  // After the errors the pipeline still runs without LoRAs.
  o.loras.clear();
  EXPECT_EQ(pipe->generate(o).images.size(), 1u);
}

// SDXL: a diffusers/PEFT LoRA on the UNet and both text encoders (text_encoder_2 included) at 0.7.
TEST(lora, sdxl_unet_and_both_text_encoders_match_diffusers) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  check_lora_case(*pipe, "lora-sdxl-euler");
  // Every module of the file matched (none reported as ignored), text_encoder_2's included.
  GenerateOptions o = test::options_from_metadata(test::reference_metadata("lora-sdxl-euler"));
  o.steps = 1;
  o.loras = {{test::reference("inputs/lora-peft-tiny-sdxl.safetensors"), 0.7f}};
  EXPECT_TRUE(pipe->generate(o).warnings.empty());
}
