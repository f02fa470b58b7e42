// Whole-pipeline comparison against a diffusers golden case (header-only: only the pipeline and
// full-size test executables link the pipeline library).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/fixtures.h"
#include "diffuse/diffuse.hpp"
#include "io/image_resize.h"
#include "io/json_config.h"
#include "io/png_image.h"

namespace diffuse::test {

/// The generation options a golden case's metadata describes (the diffusers call's arguments:
/// num_images_per_prompt -> image_count, eta -> eta, strength -> img2img from
/// golden/img2img-init.png). Scheduler config overrides are the caller's to map.
inline GenerateOptions options_from_metadata(const nlohmann::json& m) {
  GenerateOptions o;
  o.prompt = m.at("prompt").get<std::string>();
  if (m.contains("negative_prompt")) o.negative_prompt = m.at("negative_prompt").get<std::string>();
  o.steps = m.at("num_inference_steps").get<int>();
  o.guidance_scale = m.at("guidance_scale").get<float>();
  o.seed = m.at("seed").get<uint64_t>();
  o.scheduler = m.at("scheduler").get<std::string>();
  o.width = m.value("width", 0);
  o.height = m.value("height", 0);
  o.image_count = m.value("num_images_per_prompt", 1);
  if (m.contains("eta")) o.eta = m.at("eta").get<double>();
  if (m.contains("strength")) {
    o.init_image = load_png(fixture("golden/img2img-init.png"));
    o.strength = m.at("strength").get<float>();
  }
  // The shared inpainting golden names its inputs "Image": golden/img2img-init.png and
  // golden/inpaint-mask.png (its strength is diffusers' default).
  if (m.value("mask_image", "") == "Image") {
    o.init_image = load_png(fixture("golden/img2img-init.png"));
    o.mask_image = load_png(fixture("golden/inpaint-mask.png"));
  }
  return o;
}

/// What a pipeline comparison measured.
struct PipelineErrors {
  double worst_step = 0;        // max over steps of the step latent's relative error
  double image = 0;             // max over images of max|ours - ref| of the float image
  double png_close = 1;         // min over images of the fraction of PNG values within one level
  std::string scheduler_class;  // what ran (GenerationResult::scheduler_class)
};

/// Runs `pipe` with `o` and checks it against a reference file of the golden format
/// (step_latents [evaluations, batch, 4, h, w], images [batch, H, W, 3], one PNG per image) as
/// the fixtures README asks: every step latent within 1e-3 (relative), each final image within
/// 2e-3 (absolute), and each PNG within one level on at least 99.9% of values. Where the metadata
/// lists the scheduler's timesteps, the timesteps the run reports must equal its last
/// `evaluations` entries (img2img runs the tail of the schedule). `eight_bit_images`: the
/// reference's images are 8-bit ones / 255 (diffusers returned only PIL images), so each value
/// may differ by one level.
inline PipelineErrors check_pipeline_reference(Pipeline& pipe, const GenerateOptions& o,
                                               const std::string& ref_file,
                                               const std::vector<std::string>& png_files,
                                               const std::string& label,
                                               bool eight_bit_images = false) {
  PipelineErrors errors;
  const SafetensorsFile g = SafetensorsFile::open(ref_file);
  const Tensor ref_steps = g.get("step_latents"), ref_images = g.get("images");
  const nlohmann::json meta = parse_json(g.metadata().at("json"), ref_file);
  std::vector<Tensor> steps;
  std::vector<double> timesteps;
  GenerationResult r = pipe.generate(o, [&](const Progress& p) {
    steps.push_back(Tensor::from_floats(p.latents().data(),
                                        Shape(p.latent_shape.begin(), p.latent_shape.end())));
    timesteps.push_back(p.timestep);
    return true;
  });
  errors.scheduler_class = r.scheduler_class;
  EXPECT_EQ(static_cast<int64_t>(steps.size()), ref_steps.dim(0)) << label << ": model evaluations";
  if (static_cast<int64_t>(steps.size()) != ref_steps.dim(0)) {
    errors.worst_step = errors.image = std::numeric_limits<double>::infinity();
    errors.png_close = 0;
    return errors;
  }
  if (meta.contains("timesteps")) {
    const auto ref_ts = meta.at("timesteps").get<std::vector<double>>();
    EXPECT_GE(ref_ts.size(), timesteps.size()) << label << ": timesteps";
    if (ref_ts.size() >= timesteps.size()) {
      const size_t offset = ref_ts.size() - timesteps.size();
      for (size_t i = 0; i < timesteps.size(); ++i)
        EXPECT_EQ(static_cast<float>(timesteps[i]), static_cast<float>(ref_ts[offset + i]))
            << label << ": timestep of evaluation " << i;
    }
  }
  for (size_t i = 0; i < steps.size(); ++i) {
    const double e = rel_error(steps[i], ref_steps.narrow(0, static_cast<int64_t>(i), 1));
    errors.worst_step = std::isnan(e) ? e : std::max(errors.worst_step, e);
    EXPECT_LT(e, 1e-3) << label << ": step " << i;
  }
  EXPECT_EQ(static_cast<int64_t>(r.images.size()), ref_images.dim(0)) << label << ": images";
  EXPECT_EQ(png_files.size(), r.images.size()) << label << ": reference PNGs";
  if (static_cast<int64_t>(r.images.size()) != ref_images.dim(0) ||
      png_files.size() != r.images.size()) {
    errors.image = std::numeric_limits<double>::infinity();
    errors.png_close = 0;
    return errors;
  }
  for (size_t n = 0; n < r.images.size(); ++n) {
    const Image& img = r.images[n];
    const double e_img =
        abs_error(Tensor::from_floats(img.rgb.data(), {1, img.height, img.width, 3}),
                  ref_images.narrow(0, static_cast<int64_t>(n), 1));
    EXPECT_LT(e_img, eight_bit_images ? 1.0 / 255 + 1e-6 : 2e-3) << label << ": image " << n;
    errors.image = std::isnan(e_img) ? e_img : std::max(errors.image, e_img);

    const Rgb8Image ref = read_png(png_files[n]);
    const auto mine = img.to_rgb8();
    EXPECT_EQ(ref.pixels.size(), mine.size()) << label << ": PNG " << n;
    if (ref.pixels.size() != mine.size()) {
      errors.png_close = 0;
      continue;
    }
    size_t close = 0;
    for (size_t i = 0; i < mine.size(); ++i)
      close += std::abs(int(mine[i]) - int(ref.pixels[i])) <= 1;
    const double frac = double(close) / double(mine.size());
    EXPECT_GE(frac, 0.999) << label << ": PNG " << n;
    errors.png_close = std::min(errors.png_close, frac);
  }
  std::cout << label << ": worst step latent rel error " << errors.worst_step
            << ", image abs error " << errors.image << ", PNG values within 1 level "
            << errors.png_close * 100 << "%\n";
  return errors;
}

/// check_pipeline_reference for a shared golden case: options from its metadata, one PNG.
inline void check_golden_pipeline(Pipeline& pipe, const std::string& golden_file,
                                  const std::string& png_file, const std::string& label) {
  const SafetensorsFile g = SafetensorsFile::open(golden_file);
  const GenerateOptions o = options_from_metadata(parse_json(g.metadata().at("json"), golden_file));
  check_pipeline_reference(pipe, o, golden_file, {png_file}, label);
}

/// The image-to-image options that A1111's hires fix with the Lanczos upscaler stands for: `o`
/// without its hires fix run as txt2img, the 8-bit image resized with PIL's Lanczos filter to the
/// hires size, then refined at that size with the hires steps and strength and the same seed.
inline GenerateOptions lanczos_hires_by_hand(Pipeline& pipe, const GenerateOptions& o) {
  const HiresFix& h = *o.hires;
  GenerateOptions first = o;
  first.hires.reset();
  const Image base = pipe.generate(first).images.at(0);
  const int width = static_cast<int>(static_cast<float>(o.width) * h.scale) / 8 * 8;
  const int height = static_cast<int>(static_cast<float>(o.height) * h.scale) / 8 * 8;
  const Rgb8Image big =
      resize_lanczos(Rgb8Image{base.width, base.height, base.to_rgb8()}, width, height);
  GenerateOptions second = first;
  second.init_image = Image::from_rgb8(big.width, big.height, big.pixels);
  second.width = width;
  second.height = height;
  second.steps = h.steps > 0 ? h.steps : o.steps;
  second.strength = h.strength;
  return second;
}

}  // namespace diffuse::test
