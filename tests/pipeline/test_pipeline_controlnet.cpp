// ControlNet against diffusers' StableDiffusionControlNetPipeline on tiny-sd1 + tiny-controlnet:
// the shared golden (one ControlNet, scale 0.8, DPM++) and the references of
// tools/reference/make_extension_references.py (two ControlNets with their own images and
// scales; a guidance window; guess mode; a control image of another size), plus a single-file
// ControlNet and the errors for options that do not fit.
#include <gtest/gtest.h>

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

/// A metadata value that is a list, or one value standing for every ControlNet.
template <typename T>
T nth(const nlohmann::json& v, size_t i) {
  return v.is_array() ? v.at(i).get<T>() : v.get<T>();
}

GenerateOptions controlnet_options(const nlohmann::json& meta) {
  GenerateOptions o = test::options_from_metadata(meta);
  const auto& nets = meta.at("controlnets");
  for (size_t i = 0; i < nets.size(); ++i) {
    ControlNetSpec c;
    c.model = test::fixture("models/" + nets.at(i).get<std::string>());
    c.image = load_png(test::reference_input(meta.at("control_images").at(i).get<std::string>(),
                                             meta.at("control_images_root").at(i)));
    c.scale = nth<float>(meta.at("controlnet_conditioning_scale"), i);
    c.start = nth<double>(meta.at("control_guidance_start"), i);
    c.end = nth<double>(meta.at("control_guidance_end"), i);
    o.controlnets.push_back(c);
  }
  o.control_guess_mode = meta.at("guess_mode").get<bool>();
  return o;
}

}  // namespace

class ControlNetGolden : public ::testing::TestWithParam<std::string> {};

namespace {
void check_controlnet_golden(const LoadOptions& load, const std::string& what) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"), load);
  const std::string golden = test::fixture("golden/pipe-controlnet-dpmpp.safetensors");
  const nlohmann::json meta =
      parse_json(SafetensorsFile::open(golden).metadata().at("json"), golden);
  GenerateOptions o = test::options_from_metadata(meta);
  o.controlnets = {{test::fixture("models/tiny-controlnet"),
                    load_png(test::fixture("golden/img2img-init.png")),
                    meta.at("controlnet_conditioning_scale").get<float>(), 0, 1}};
  test::check_pipeline_reference(*pipe, o, golden, {test::fixture("golden/controlnet-dpmpp-0.png")},
                                 what);
}
}  // namespace

TEST_P(ControlNetGolden, dpmpp_scale_0_8) {
  LoadOptions load;
  load.backend = GetParam();
  check_controlnet_golden(load, "controlnet-dpmpp on " + GetParam());
}

// The other attention kernels hold the golden's tolerances too, through the text encoder, the
// UNet, the ControlNet and the VAE.
TEST(controlnet_golden, every_attention_kernel_matches_diffusers) {
  for (const char* kernel : {"standard", "flash"}) {
    LoadOptions load;
    load.attention = kernel;
    check_controlnet_golden(load, std::string("controlnet-dpmpp with ") + kernel + " attention");
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, ControlNetGolden, ::testing::ValuesIn(backend_names()));

TEST(controlnet_reference, cases_in_sequence_on_one_pipeline) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  for (const char* name : {"controlnet-multi-euler", "controlnet-window-dpmpp",
                           "controlnet-guess-ddim", "controlnet-resize-euler"}) {
    const nlohmann::json meta = test::reference_metadata(name);
    test::check_pipeline_reference(*pipe, controlnet_options(meta),
                                   test::reference("pipe-" + std::string(name) + ".safetensors"),
                                   {test::reference(std::string(name) + "-0.png")}, name);
  }
}

TEST(controlnet_reference, image_to_image_and_inpainting_with_a_controlnet) {
  // StableDiffusionControlNetImg2ImgPipeline, and StableDiffusionControlNetInpaintPipeline with a
  // 9-channel UNet (the ControlNet reads the latents alone; guess mode, a guidance window) and a
  // 4-channel one (the blend after every step).
  for (const char* name : {"controlnet-img2img-euler", "controlnet-inpaint9-guess-ddim",
                           "controlnet-inpaint4-dpmpp"}) {
    const nlohmann::json meta = test::reference_metadata(name);
    auto pipe = Pipeline::load(test::fixture("models/" + meta.at("model").get<std::string>()));
    GenerateOptions o = controlnet_options(meta);
    o.init_image = load_png(test::reference_input(meta, "image"));
    if (meta.contains("mask_image"))
      o.mask_image = load_png(test::reference_input(meta, "mask_image"));
    o.strength = meta.at("strength").get<float>();
    test::check_pipeline_reference(*pipe, o,
                                   test::reference("pipe-" + std::string(name) + ".safetensors"),
                                   {test::reference(std::string(name) + "-0.png")}, name);
  }
}

TEST(controlnet, bad_options_are_named) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "x";
  o.steps = 1;
  const Image image = load_png(test::fixture("golden/img2img-init.png"));
  o.controlnets = {{test::fixture("models/tiny-controlnet"), image, 1.f, 0.6, 0.4}};
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); }, {"ControlNet 1", "start"});
  o.controlnets[0].start = 0;
  o.controlnets[0].end = 1;
  o.controlnets[0].scale = -1;
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); }, {"scale"});
  o.controlnets[0].scale = 1;
  o.controlnets[0].model = test::temp_dir() + "/no-such-controlnet";
  EXPECT_THROW(pipe->generate(o), FileError);
  GenerateOptions g;
  g.prompt = "x";
  g.control_guess_mode = true;
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(g); }, {"guess mode"});
  // A ControlNet for another family (SD 2.x's 64-wide tiny text encoder) is refused by name.
  auto sd2 = Pipeline::load(test::fixture("models/tiny-sd2"));
  o.controlnets[0].model = test::fixture("models/tiny-controlnet");
  test::expect_error_mentioning<ConfigError>([&] { sd2->generate(o); },
                                             {"tiny-controlnet", "another model family"});
}

TEST(controlnet, canny_preprocessor_is_the_edge_map_of_the_photo) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "a house";
  o.steps = 2;
  const Image photo = load_png(test::fixture("golden/img2img-init.png"));
  ControlNetSpec spec{test::fixture("models/tiny-controlnet"), photo, 0.9f, 0.0, 1.0};
  spec.preprocessor = "canny";
  spec.low_threshold = 20.f;
  spec.high_threshold = 60.f;
  o.controlnets = {spec};
  const Image preprocessed = pipe->generate(o).images.at(0);
  // The same with the edge map passed as the control image.
  const Image edges = canny_edges(photo, 20.f, 60.f);
  size_t white = 0;
  for (float v : edges.rgb) white += v == 1.f;
  EXPECT_GT(white, 100u);  // the map has edges (tests/io checks them against OpenCV)
  o.controlnets[0].image = edges;
  o.controlnets[0].preprocessor = "none";
  EXPECT_EQ(pipe->generate(o).images.at(0).rgb, preprocessed.rgb);
  o.controlnets[0].image = photo;
  EXPECT_NE(pipe->generate(o).images.at(0).rgb, preprocessed.rgb);
  // Bad preprocessor settings are named before anything runs.
  o.controlnets[0].preprocessor = "depth";
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); },
                                             {"ControlNet 1", "preprocessor 'depth'", "canny"});
  o.controlnets[0].preprocessor = "canny";
  o.controlnets[0].low_threshold = -5.f;
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); }, {"canny thresholds"});
}
