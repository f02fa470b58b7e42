// SDXL inpainting, ControlNet, textual inversion and hires fix. Inpainting, ControlNet and
// embeddings against diffusers (StableDiffusionXLInpaintPipeline,
// StableDiffusionXLControlNetPipeline, load_textual_inversion into both encoders;
// tests/data/reference by tools/reference/make_sdxl_extension_references.py); the hires fix, which
// diffusers does not have, as the composition A1111 runs: txt2img, resize, img2img conditioned on
// the larger size. Also pickled (.pt/.bin) embeddings against the safetensors files they were saved
// from.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/pipeline_check.h"
#include "common/reference_data.h"
#include "diffuse/diffuse.hpp"
#include "io/image_resize.h"
#include "io/png_image.h"
#include "io/safetensors.h"
#include "models/controlnet/controlnet_model.h"
#include "pipeline/synthetic_weights.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> pngs_of(const std::string& name, int count) {
  std::vector<std::string> pngs;
  for (int n = 0; n < count; ++n)
    pngs.push_back(test::reference(name + "-" + std::to_string(n) + ".png"));
  return pngs;
}

void check_case_in_sdxl_extensions(Pipeline& pipe, const GenerateOptions& o,
                                   const std::string& name) {
  test::check_pipeline_reference(pipe, o, test::reference("pipe-" + name + ".safetensors"),
                                 pngs_of(name, o.image_count), name);
}

GenerateOptions inpaint_options(const nlohmann::json& meta) {
  GenerateOptions o = test::options_from_metadata(meta);
  o.init_image = load_png(test::reference_input(meta, "image"));
  o.mask_image = load_png(test::reference_input(meta, "mask_image"));
  o.strength.reset();
  return o;
}

/// The script's ControlNet: its config, the fixtures' rule weights, as a diffusers folder.
std::string rule_controlnet_folder(const nlohmann::json& config, const std::string& name) {
  const fs::path dir = fs::path(test::temp_dir()) / ("controlnet-" + name);
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << config.dump(2);
  WeightStore rule = synthetic_weight_store();
  ControlNetModel::from_weights(ControlNetConfig::parse(config, name), rule);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& k : rule.keys()) tensors.emplace_back(k, rule.get(k));
  write_safetensors((dir / "diffusion_pytorch_model.safetensors").string(), tensors);
  return dir.string();
}

GenerateOptions quick_options() {
  GenerateOptions o;
  o.prompt = "a lighthouse";
  o.seed = 5;
  o.steps = 4;
  o.guidance_scale = 5.f;
  o.width = o.height = 64;
  return o;
}

}  // namespace

TEST(sdxl_inpaint, four_channel_model_default_strength_matches_diffusers) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  const nlohmann::json meta = test::reference_metadata("sdxl-inpaint-euler");
  ASSERT_EQ(meta.at("pipeline"), "StableDiffusionXLInpaintPipeline");
  // diffusers' default strength for SDXL inpainting is 0.9999: the first step is skipped and the
  // loop starts from the noised image.
  ASSERT_FALSE(meta.contains("num_images_per_prompt") && meta.at("num_images_per_prompt") != 1);
  check_case_in_sdxl_extensions(*pipe, inpaint_options(meta), "sdxl-inpaint-euler");
  const GenerationResult r = pipe->generate(inpaint_options(meta));
  ASSERT_TRUE(r.options.strength.has_value());
  EXPECT_EQ(*r.options.strength, 0.9999f);
  EXPECT_EQ(meta.at("timesteps").size(), static_cast<size_t>(meta.at("num_inference_steps")) - 1);
}

TEST(sdxl_inpaint, strength_and_two_images_match_diffusers) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  const nlohmann::json meta = test::reference_metadata("sdxl-inpaint-strength-dpmpp");
  GenerateOptions o = inpaint_options(meta);
  o.strength = meta.at("strength").get<float>();
  ASSERT_EQ(o.image_count, 2);
  check_case_in_sdxl_extensions(*pipe, o, "sdxl-inpaint-strength-dpmpp");
}

TEST(sdxl_controlnet, text_time_controlnet_matches_diffusers) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  for (const char* name : {"sdxl-controlnet-euler", "sdxl-controlnet-guess-dpmpp"}) {
    const nlohmann::json meta = test::reference_metadata(name);
    ASSERT_EQ(meta.at("pipeline"), "StableDiffusionXLControlNetPipeline");
    GenerateOptions o = test::options_from_metadata(meta);
    ControlNetSpec c;
    c.model = rule_controlnet_folder(meta.at("controlnet_config"), name);
    c.image = load_png(test::reference_input(meta.at("control_images").at(0).get<std::string>(),
                                             meta.at("control_images_root").at(0)));
    c.scale = meta.at("controlnet_conditioning_scale").get<float>();
    c.start = meta.at("control_guidance_start").get<double>();
    c.end = meta.at("control_guidance_end").get<double>();
    o.controlnets = {c};
    o.control_guess_mode = meta.at("guess_mode").get<bool>();
    check_case_in_sdxl_extensions(*pipe, o, name);
  }
}

TEST(sdxl_controlnet, image_to_image_and_inpainting_match_diffusers) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  for (const char* name : {"sdxl-controlnet-img2img-euler", "sdxl-controlnet-inpaint-dpmpp"}) {
    const nlohmann::json meta = test::reference_metadata(name);
    GenerateOptions o = test::options_from_metadata(meta);
    o.init_image = load_png(test::reference_input(meta, "image"));
    if (meta.contains("mask_image"))
      o.mask_image = load_png(test::reference_input(meta, "mask_image"));
    o.strength = meta.at("strength").get<float>();
    ControlNetSpec c;
    c.model = rule_controlnet_folder(meta.at("controlnet_config"), name);
    c.image = load_png(test::reference_input(meta.at("control_images").at(0).get<std::string>(),
                                             meta.at("control_images_root").at(0)));
    c.scale = meta.at("controlnet_conditioning_scale").get<float>();
    o.controlnets = {c};
    check_case_in_sdxl_extensions(*pipe, o, name);
  }
}

TEST(sdxl_controlnet, controlnet_for_another_family_is_named) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  GenerateOptions o = quick_options();
  ControlNetSpec c;
  c.model = test::fixture("models/tiny-controlnet");  // made from tiny-sd1
  c.image = load_png(test::fixture("golden/img2img-init.png"));
  o.controlnets = {c};
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); },
                                             {"tiny-controlnet", "another model family"});
}

TEST(sdxl_textual_inversion, a1111_sdxl_embedding_matches_diffusers) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  const std::string name = "sdxl-ti-a1111-euler";
  const nlohmann::json meta = test::reference_metadata(name);
  GenerateOptions o = test::options_from_metadata(meta);
  for (const auto& e : meta.at("embeddings"))
    o.embeddings.push_back(
        test::reference_input(e.at("file").get<std::string>(), e.at("root").get<std::string>()));
  check_case_in_sdxl_extensions(*pipe, o, name);
}

TEST(sdxl_textual_inversion, embeddings_for_the_other_family_are_named) {
  auto sdxl = Pipeline::load(test::fixture("models/tiny-sdxl"));
  auto sd1 = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o = quick_options();
  o.steps = 1;
  o.embeddings = {test::reference("inputs/tinystyle.safetensors")};
  test::expect_error_mentioning<ConfigError>([&] { sdxl->generate(o); },
                                             {"tinystyle.safetensors", "clip_l/clip_g"});
  o.embeddings = {test::reference("inputs/tinyxl.safetensors")};
  test::expect_error_mentioning<ConfigError>([&] { sd1->generate(o); },
                                             {"tinyxl.safetensors", "SDXL embedding"});
  // A half-SDXL file.
  const std::string half = test::temp_dir() + "/half.safetensors";
  const SafetensorsFile f = SafetensorsFile::open(test::reference("inputs/tinyxl.safetensors"));
  write_safetensors(half, {{"clip_l", f.get("clip_l")}});
  o.embeddings = {half};
  test::expect_error_mentioning<FileError>([&] { sdxl->generate(o); },
                                           {"half.safetensors", "clip_l and clip_g"});
}

TEST(textual_inversion, pickled_embeddings_equal_their_safetensors) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o = quick_options();
  o.steps = 2;
  for (const auto& [pickled, safetensors, prompt] :
       {std::tuple<std::string, std::string, std::string>{
            "pt/tinystyle.pt", "tinystyle.safetensors", "tinystyle, a horse on mars"},
        {"pt/tiny-token.bin", "tiny-token.safetensors", "a photo of <tiny-token>"}}) {
    o.prompt = prompt;
    o.embeddings = {test::reference("inputs/" + safetensors)};
    const GenerationResult want = pipe->generate(o);
    o.embeddings = {test::reference("inputs/" + pickled)};
    EXPECT_EQ(pipe->generate(o).images.at(0).rgb, want.images.at(0).rgb) << pickled;
  }
}

TEST(sdxl_hires_fix, second_pass_is_img2img_at_the_larger_size) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  GenerateOptions o = quick_options();
  o.scheduler = "euler-a";
  o.hires = HiresFix{1.5f, 3, 0.7f, "lanczos"};
  const GenerationResult hires = pipe->generate(o);
  ASSERT_EQ(hires.images.size(), 1u);
  EXPECT_EQ(hires.images[0].width, 96);
  EXPECT_EQ(hires.images[0].height, 96);

  // By hand: txt2img, Lanczos resize, img2img whose size conditions are the larger size (what
  // StableDiffusionXLImg2ImgPipeline defaults them to, and what A1111 passes).
  GenerateOptions second = test::lanczos_hires_by_hand(*pipe, o);
  EXPECT_EQ(pipe->generate(second).images[0].rgb, hires.images[0].rgb);
  // Conditioned on the first pass's size instead, the image differs.
  second.original_size = second.target_size = SizeHW{64, 64};
  EXPECT_NE(pipe->generate(second).images[0].rgb, hires.images[0].rgb);
}

TEST(sdxl_hires_fix, latent_upscale_and_a_refiner_conflict) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sdxl"));
  GenerateOptions o = quick_options();
  o.hires = HiresFix{2.f, 2, 0.6f, "latent-bilinear"};
  EXPECT_EQ(pipe->generate(o).images.at(0).width, 128);
  o.refiner = test::fixture("models/tiny-sdxl");
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); }, {"hires", "refiner"});
}
