// The C API's inpainting, LoRA, embedding, ControlNet, hires-fix and SDXL setters: each run through
// diffuse.h gives the image the C++ API gives for the same options.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/fixtures.h"
#include "common/reference_data.h"
#include "diffuse/diffuse.h"
#include "diffuse/diffuse.hpp"

using namespace diffuse;

namespace {

/// Runs the C API with `configure` applied to fresh options (prompt "a horse", 3 steps, 64x64,
/// seed 2) and returns the first image's bytes.
template <typename F>
std::vector<uint8_t> c_api_image(const std::string& model, F configure) {
  diffuse_pipeline* p = nullptr;
  EXPECT_EQ(diffuse_pipeline_load(model.c_str(), &p), DIFFUSE_OK);
  diffuse_options* o = nullptr;
  EXPECT_EQ(diffuse_options_create(&o), DIFFUSE_OK);
  diffuse_options_set_prompt(o, "a horse");
  diffuse_options_set_steps(o, 3);
  diffuse_options_set_size(o, 64, 64);
  diffuse_options_set_seed(o, 2);
  configure(o);
  diffuse_result* r = nullptr;
  std::vector<uint8_t> bytes;
  EXPECT_EQ(diffuse_generate(p, o, nullptr, nullptr, &r), DIFFUSE_OK) << diffuse_last_error();
  if (r) {
    const uint8_t* rgb = nullptr;
    int w = 0, h = 0;
    EXPECT_EQ(diffuse_result_image(r, 0, &rgb, &w, &h), DIFFUSE_OK);
    bytes.assign(rgb, rgb + size_t(w) * size_t(h) * 3);
    diffuse_result_free(r);
  }
  diffuse_options_free(o);
  diffuse_pipeline_free(p);
  return bytes;
}

template <typename F>
std::vector<uint8_t> cpp_api_image(const std::string& model, F configure) {
  auto pipe = Pipeline::load(model);
  GenerateOptions o;
  o.prompt = "a horse";
  o.steps = 3;
  o.width = o.height = 64;
  o.seed = 2;
  configure(o);
  return pipe->generate(o).images[0].to_rgb8();
}

}  // namespace

TEST(c_api_extensions, setters_give_the_cpp_api_images) {
  const std::string sd1 = test::fixture("models/tiny-sd1");
  const Image init = load_png(test::fixture("golden/img2img-init.png"));
  const Image mask = load_png(test::fixture("golden/inpaint-mask.png"));
  const std::vector<uint8_t> init8 = init.to_rgb8(), mask8 = mask.to_rgb8();
  const std::string lora = test::fixture("models/tiny-sd1-lora-kohya.safetensors");
  const std::string embedding = test::reference("inputs/tinystyle.safetensors");
  const std::string controlnet = test::fixture("models/tiny-controlnet");

  EXPECT_EQ(c_api_image(sd1,
                        [&](diffuse_options* o) {
                          diffuse_options_set_init_image(o, init8.data(), 128, 128, 1.f);
                          diffuse_options_set_mask(o, mask8.data(), 128, 128, 2);
                        }),
            cpp_api_image(sd1, [&](GenerateOptions& o) {
              o.init_image = init;
              o.strength = 1.f;
              o.mask_image = mask;
              o.mask_blur = 2;
            }));
  EXPECT_EQ(c_api_image(sd1,
                        [&](diffuse_options* o) {
                          diffuse_options_set_init_image(o, init8.data(), 128, 128, 1.f);
                          diffuse_options_set_mask(o, mask8.data(), 128, 128, 0);
                          diffuse_options_set_mask_crop(o, 12);
                        }),
            cpp_api_image(sd1, [&](GenerateOptions& o) {
              o.init_image = init;
              o.strength = 1.f;
              o.mask_image = mask;
              o.mask_crop = 12;
            }));
  EXPECT_EQ(c_api_image(sd1,
                        [&](diffuse_options* o) {
                          diffuse_options_add_lora(o, lora.c_str(), 0.7f);
                          diffuse_options_add_embedding(o, embedding.c_str());
                          diffuse_options_set_prompt(o, "tinystyle horse");
                        }),
            cpp_api_image(sd1, [&](GenerateOptions& o) {
              o.loras = {{lora, 0.7f}};
              o.embeddings = {embedding};
              o.prompt = "tinystyle horse";
            }));
  EXPECT_EQ(c_api_image(sd1,
                        [&](diffuse_options* o) {
                          diffuse_options_add_controlnet(o, controlnet.c_str(), init8.data(), 128,
                                                         128, 0.8f, 0.0, 0.5);
                        }),
            cpp_api_image(sd1, [&](GenerateOptions& o) {
              o.controlnets = {{controlnet, init, 0.8f, 0.0, 0.5}};
            }));
  EXPECT_EQ(c_api_image(sd1,
                        [&](diffuse_options* o) {
                          diffuse_options_set_hires(o, 1.5f, 2, 0.5f, "latent-bilinear");
                        }),
            cpp_api_image(sd1, [&](GenerateOptions& o) {
              o.hires = HiresFix{1.5f, 2, 0.5f, "latent-bilinear"};
            }));
}

TEST(c_api_extensions, sdxl_setters_give_the_cpp_api_images) {
  const std::string base = test::fixture("models/tiny-sdxl");
  const std::string refiner = test::assemble_tiny_sdxl_refiner(
      std::filesystem::path(test::temp_dir()) / "c-api-sdxl-refiner");
  const Image init = load_png(test::fixture("golden/img2img-init.png"));
  const std::vector<uint8_t> init8 = init.to_rgb8();
  EXPECT_EQ(c_api_image(base,
                        [&](diffuse_options* o) {
                          diffuse_options_set_original_size(o, 96, 80);
                          diffuse_options_set_target_size(o, 64, 48);
                          diffuse_options_set_crop_coords(o, 8, 4);
                          diffuse_options_set_negative_original_size(o, 32, 40);
                          diffuse_options_set_refiner(o, refiner.c_str(), 0.6f);
                        }),
            cpp_api_image(base, [&](GenerateOptions& o) {
              o.original_size = SizeHW{80, 96};
              o.target_size = SizeHW{48, 64};
              o.crop_coords = CropTopLeft{8, 4};
              o.negative_original_size = SizeHW{40, 32};
              o.refiner = refiner;
              o.high_noise_frac = 0.6f;
            }));
  EXPECT_EQ(c_api_image(refiner,
                        [&](diffuse_options* o) {
                          diffuse_options_set_init_image(o, init8.data(), 128, 128, 0.5f);
                          diffuse_options_set_aesthetic_scores(o, 8.f, 1.f);
                        }),
            cpp_api_image(refiner, [&](GenerateOptions& o) {
              o.init_image = init;
              o.strength = 0.5f;
              o.aesthetic_score = 8.f;
              o.negative_aesthetic_score = 1.f;
            }));
}
