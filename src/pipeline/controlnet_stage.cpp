#include "pipeline/controlnet_stage.h"

#include "backend/ops.h"
#include "diffuse/error.hpp"

namespace diffuse::stages {

Image control_map(const ControlNetSpec& spec) {
  if (spec.preprocessor.empty() || spec.preprocessor == "none") return spec.image;
  if (spec.preprocessor == "canny")
    return canny_edges(spec.image, spec.low_threshold, spec.high_threshold);
  throw ConfigError("ControlNet preprocessor '" + spec.preprocessor +
                    "' is not one of none, canny (run other preprocessors yourself and pass "
                    "the map as the control image)");
}

Tensor prepare_control_image(const Image& image, int width, int height, Device device) {
  const Image sized =
      image.width != width || image.height != height ? resize_image(image, width, height) : image;
  const int64_t h = height, w = width;
  const Tensor hwc = Tensor::from_floats(sized.rgb.data(), {1, h * w, 3}).on(device);
  return ops::nlc_to_nchw(hwc, h, w);
}

namespace {

/// The second half of a batch (guess mode controls only the conditional half).
Tensor cond_half(const Tensor& x) {
  const int64_t half = x.dim(0) / 2;
  return x.narrow(0, half, half);
}

/// diffusers' controlnet_keep[i]: 0 outside the unit's [start, end] share of the evaluations.
bool in_window(const ControlUnit& u, int step, int evaluations) {
  const double n = evaluations;
  return !(step / n < u.start || (step + 1) / n > u.end);
}

/// Guess mode under guidance: the unconditional half gets zero residuals.
UNetResiduals with_zero_uncond_half(const UNetResiduals& r) {
  const auto pad = [](const Tensor& t) {
    return ops::concat(Tensor::zeros(t.shape()).on(t.device()), t, 0);
  };
  UNetResiduals out;
  for (const Tensor& d : r.down) out.down.push_back(pad(d));
  out.mid = pad(r.mid);
  return out;
}

}  // namespace

ResidualSource controlnet_residuals(std::vector<ControlUnit> units, Conditioning cond, bool cfg,
                                    bool guess_mode, int evaluations) {
  const bool cond_only = guess_mode && cfg;
  Conditioning control_cond = cond;
  if (cond_only) {
    control_cond.context = cond_half(cond.context);
    if (cond.added)
      control_cond.added = std::make_shared<const UNetAddedConditions>(
          UNetAddedConditions{cond_half(cond.added->text_embeds), cond_half(cond.added->time_ids)});
  }
  return [units = std::move(units), control_cond, cond_only, guess_mode, evaluations](
             const Tensor& x, double t, int step) -> std::optional<UNetResiduals> {
    // A 9-channel inpainting UNet's input carries the mask and the masked image after the
    // latents; the ControlNet reads the latents alone (StableDiffusionControlNetInpaintPipeline).
    const int64_t latent_channels = units.front().model->config().unet.in_channels;
    const Tensor latents =
        x.dim(1) > latent_channels ? x.narrow(1, 0, latent_channels).contiguous() : x;
    const Tensor input = cond_only ? cond_half(latents) : latents;
    const std::vector<double> ts(static_cast<size_t>(input.dim(0)), t);
    std::optional<UNetResiduals> sum;
    for (const ControlUnit& u : units) {
      // Outside its window diffusers runs the ControlNet with scale 0: zero residuals, which
      // change nothing when added, so it is skipped here.
      if (!in_window(u, step, evaluations)) continue;
      const Tensor image = ops::repeat_batch(u.image, input.dim(0));
      UNetResiduals r = u.model->forward(input, ts, control_cond.context, image, u.scale,
                                         guess_mode, control_cond.added.get());
      sum = sum ? add_residuals(*sum, r) : std::move(r);
    }
    if (sum && cond_only) return with_zero_uncond_half(*sum);
    return sum;
  };
}

}  // namespace diffuse::stages
