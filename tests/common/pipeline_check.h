// Whole-pipeline comparison against a diffusers golden case (header-only: only the pipeline and
// full-size test executables link the pipeline library).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "diffuse/diffuse.hpp"
#include "io/json_config.h"
#include "io/png_image.h"

namespace diffuse::test {

/// The generation options a golden case's metadata describes.
inline GenerateOptions options_from_metadata(const nlohmann::json& m) {
  GenerateOptions o;
  o.prompt = m.at("prompt").get<std::string>();
  o.negative_prompt = m.value("negative_prompt", "");
  o.steps = m.at("num_inference_steps").get<int>();
  o.guidance_scale = m.at("guidance_scale").get<float>();
  o.seed = m.at("seed").get<uint64_t>();
  o.scheduler = m.at("scheduler").get<std::string>();
  o.width = m.value("width", 0);
  o.height = m.value("height", 0);
  if (m.contains("strength")) {
    o.init_image = load_png(fixture("golden/img2img-init.png"));
    o.strength = m.at("strength").get<float>();
  }
  return o;
}

/// Runs `pipe` with the case's options and checks, as the fixtures README asks: every step latent
/// within 1e-3 (relative), the final image within 2e-3 (absolute), and the PNG within one level on
/// at least 99.9% of values.
inline void check_golden_pipeline(Pipeline& pipe, const std::string& golden_file,
                                  const std::string& png_file, const std::string& label) {
  const SafetensorsFile g = SafetensorsFile::open(golden_file);
  const Tensor ref_steps = g.get("step_latents"), ref_images = g.get("images");
  const GenerateOptions o = options_from_metadata(parse_json(g.metadata().at("json"), golden_file));
  std::vector<Tensor> steps;
  GenerationResult r = pipe.generate(o, [&](const Progress& p) {
    steps.push_back(Tensor::from_floats(p.latents().data(),
                                        Shape(p.latent_shape.begin(), p.latent_shape.end())));
    return true;
  });
  ASSERT_EQ(static_cast<int64_t>(steps.size()), ref_steps.dim(0)) << "model evaluations";
  double worst_step = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    const double e = rel_error(steps[i], ref_steps.narrow(0, static_cast<int64_t>(i), 1));
    worst_step = std::max(worst_step, e);
    EXPECT_LT(e, 1e-3) << "step " << i;
  }
  ASSERT_EQ(r.images.size(), 1u);
  const Image& img = r.images[0];
  const double e_img =
      abs_error(Tensor::from_floats(img.rgb.data(), {1, img.height, img.width, 3}), ref_images);
  EXPECT_LT(e_img, 2e-3);

  const Rgb8Image ref = read_png(png_file);
  const auto mine = img.to_rgb8();
  ASSERT_EQ(ref.pixels.size(), mine.size());
  size_t close = 0;
  for (size_t i = 0; i < mine.size(); ++i)
    close += std::abs(int(mine[i]) - int(ref.pixels[i])) <= 1;
  const double frac = double(close) / double(mine.size());
  EXPECT_GE(frac, 0.999);
  std::cout << label << ": worst step latent rel error " << worst_step << ", image abs error "
            << e_img << ", PNG values within 1 level " << frac * 100 << "%\n";
}

}  // namespace diffuse::test
