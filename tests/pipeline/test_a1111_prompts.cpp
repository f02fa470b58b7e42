// The A1111 prompt syntax in the pipeline: each reference prompt's conditioning equals what A1111's
// code computes with the same text encoder (tests/data/reference/a1111-prompts.safetensors), a
// prompt and negative prompt of different chunk counts guide as A1111 does (each half through the
// UNet alone: pipe-a1111-split-euler), the same for SDXL (a1111-prompts-sdxl, both encoders;
// pipe-a1111-sdxl-split-euler), and the option's errors and warnings.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/pipeline_check.h"
#include "common/reference_data.h"
#include "diffuse/diffuse.hpp"
#include "pipeline/a1111_prompt_encoding.h"
#include "pipeline/model_folder.h"

using namespace diffuse;

TEST(a1111_prompts, conditioning_matches_a1111s_code) {
  const std::string path = test::reference("a1111-prompts.safetensors");
  const SafetensorsFile ref = SafetensorsFile::open(path);
  const nlohmann::json cases = parse_json(ref.metadata().at("json"), path).at("cases");
  for (const char* name : {"tiny-sd1", "tiny-sd2"}) {
    const StableDiffusionModel model =
        load_stable_diffusion_folder(test::fixture(std::string("models/") + name));
    for (size_t i = 0; i < cases.size(); ++i) {
      if (!cases[i].contains(name)) continue;
      const std::string prompt = cases[i].at("prompt");
      const Tensor ours =
          stages::encode_prompt_a1111(model, prompt, cases[i].at("clip_skip"), kCpu);
      const Tensor expected = ref.get(std::string(name) + "/" + std::to_string(i));
      ASSERT_EQ(ours.shape(), expected.shape()) << name << ": " << prompt;
      EXPECT_LT(test::rel_error(ours, expected), 1e-4) << name << ": " << prompt;
    }
  }
}

TEST(a1111_prompts, prompts_of_different_lengths_guide_each_half_alone) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  const std::string name = "a1111-split-euler";
  const nlohmann::json m = test::reference_metadata(name);
  GenerateOptions o = test::options_from_metadata(m);
  o.prompt_syntax = "a1111";
  test::check_pipeline_reference(*pipe, o, test::reference("pipe-" + name + ".safetensors"),
                                 {test::reference(name + "-0.png")}, name);
}

TEST(a1111_prompts, options_errors_and_warnings) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "a (red cube on a table";
  o.steps = 1;
  o.width = o.height = 64;
  o.prompt_syntax = "a1111";
  GenerationResult r = pipe->generate(o);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("bracket"), std::string::npos) << r.warnings[0];
  // Plain syntax reads the same prompt as text: another image, no warning.
  GenerateOptions plain = o;
  plain.prompt_syntax = "plain";
  const GenerationResult p = pipe->generate(plain);
  EXPECT_TRUE(p.warnings.empty());
  EXPECT_NE(p.images[0].rgb, r.images[0].rgb);

  o.prompt_syntax = "comfy";
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); },
                                             {"prompt syntax", "comfy"});
  o.prompt_syntax = "a1111";
  o.prompt = "a (cube:1..2)";
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); }, {"1..2"});

  // A1111 applies no clip skip to SDXL: a warning, and the image of clip skip 0.
  auto xl = Pipeline::load(test::fixture("models/tiny-sdxl"));
  o.prompt = "a (cube:1.2)";
  o.clip_skip = 1;
  r = xl->generate(o);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("clip skip 1 is ignored"), std::string::npos) << r.warnings[0];
  o.clip_skip = 0;
  EXPECT_EQ(xl->generate(o).images[0].rgb, r.images[0].rgb);
  // An empty negative prompt is zeros on SDXL under A1111 syntax (force_zero_negative_prompt):
  // the same image as an absent one under plain syntax with force_zeros_for_empty_prompt.
  o.prompt = "a cube";
  o.negative_prompt = "";
  const Image a1111_empty = xl->generate(o).images[0];
  GenerateOptions absent = o;
  absent.prompt_syntax = "plain";
  absent.negative_prompt.reset();
  EXPECT_EQ(xl->generate(absent).images[0].rgb, a1111_empty.rgb);
}

TEST(a1111_prompts, sdxl_conditioning_matches_a1111s_code) {
  const std::string path = test::reference("a1111-prompts-sdxl.safetensors");
  const SafetensorsFile ref = SafetensorsFile::open(path);
  const nlohmann::json cases = parse_json(ref.metadata().at("json"), path).at("cases");
  ASSERT_GE(cases.size(), 5u);
  const StableDiffusionXLModel xl =
      load_stable_diffusion_xl_folder(test::fixture("models/tiny-sdxl"));
  for (const auto& c : cases) {
    const std::string prompt = c.at("prompt"), key = "sdxl/" + std::to_string(int(c.at("index")));
    const stages::XLPromptEmbeds ours =
        stages::encode_prompt_xl_a1111(&xl.base, xl.tokenizer_2, xl.text_encoder_2, prompt, kCpu);
    const Tensor crossattn = ref.get(key + ".crossattn"), pooled = ref.get(key + ".pooled");
    ASSERT_EQ(ours.prompt_embeds.shape(), crossattn.shape()) << prompt;
    EXPECT_LT(test::rel_error(ours.prompt_embeds, crossattn), 1e-4) << prompt;
    EXPECT_LT(test::rel_error(ours.pooled_prompt_embeds, pooled), 1e-4) << prompt;
  }
}

TEST(a1111_prompts, sdxl_prompts_of_different_lengths_guide_each_half_alone) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  const std::string name = "a1111-sdxl-split-euler";
  const nlohmann::json m = test::reference_metadata(name);
  GenerateOptions o = test::options_from_metadata(m);
  o.prompt_syntax = "a1111";
  test::check_pipeline_reference(*pipe, o, test::reference("pipe-" + name + ".safetensors"),
                                 {test::reference(name + "-0.png")}, name);
}
