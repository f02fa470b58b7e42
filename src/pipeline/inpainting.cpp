#include "pipeline/inpainting.h"

#include "backend/ops.h"
#include "io/image_filters.h"
#include "io/image_resize.h"

namespace diffuse::stages {

using ops::expr::in;

namespace {
/// [n, 1, h, w] -> [n, c, h, w] (the element-wise ops take equal shapes).
Tensor repeat_channels(const Tensor& x, int c) {
  Tensor out = x;
  for (int i = 1; i < c; ++i) out = ops::concat_channels(out, x);
  return out;
}
}  // namespace

Rgb8Image mask_at_size(const Image& mask, int width, int height, int blur) {
  // PIL works on the 8-bit image: blur (mask_processor.blur), then resize.
  Rgb8Image rgb8{mask.width, mask.height, mask.to_rgb8()};
  if (blur > 0) rgb8 = gaussian_blur(rgb8, static_cast<float>(blur));
  return resize_lanczos(rgb8, width, height);
}

Tensor prepare_mask(const Image& mask, int width, int height, int blur, Device device) {
  const std::vector<uint8_t> luma = to_grayscale(mask_at_size(mask, width, height, blur));
  std::vector<float> binary(luma.size());
  // pil_to_numpy's x / 255, then binarize: < 0.5 -> 0, else 1.
  for (size_t i = 0; i < luma.size(); ++i)
    binary[i] = static_cast<float>(luma[i]) / 255.f < 0.5f ? 0.f : 1.f;
  return Tensor::from_floats(binary.data(), {1, 1, height, width}).on(device);
}

InpaintLatents prepare_inpaint_latents(const StableDiffusionModel& model, const Tensor& image,
                                       const Tensor& mask, int copies, bool full_strength,
                                       Scheduler& scheduler, double timestep, RandomSource& rng,
                                       const StartContent& start_content) {
  InpaintLatents r;
  const bool four_channel_unet = model.unet.config().in_channels == 4;
  if (four_channel_unet || !full_strength)
    r.image_latents = ops::repeat_batch(vae_posterior_sample(model, image, rng), copies);
  const int unit = model.vae_scale_factor();
  const int64_t h = image.dim(2) / unit, w = image.dim(3) / unit;
  const int64_t channels = model.vae.config().latent_channels;
  r.noise = rng.randn({copies, channels, h, w}).on(image.device());
  if (full_strength) {
    r.latents = ops::evaluate(in(0) * static_cast<float>(scheduler.init_noise_sigma()), {r.noise});
  } else {
    r.latents = scheduler.add_noise(
        start_content ? start_content(r.image_latents) : r.image_latents, r.noise, timestep);
  }
  // masked_image = image * (mask < 0.5): the region to repaint becomes 0 (mid grey).
  const Tensor masked_image =
      ops::evaluate(in(0) * (1.f - in(1)), {image, repeat_channels(mask, int(image.dim(1)))});
  r.mask = ops::repeat_batch(ops::upsample_nearest(mask, h, w), copies);
  // diffusers encodes the masked image whatever the UNet, so its draw always happens.
  r.masked_image_latents =
      ops::repeat_batch(vae_posterior_sample(model, masked_image, rng), copies);
  return r;
}

NoisePredictor with_inpainting_channels(NoisePredictor unet, const Tensor& mask,
                                        const Tensor& masked_image_latents) {
  return [unet = std::move(unet), mask, masked_image_latents](const Tensor& x, double t, int step) {
    const int64_t batch = x.dim(0);
    const Tensor conditioned =
        ops::concat_channels(ops::concat_channels(x, ops::repeat_batch(mask, batch)),
                             ops::repeat_batch(masked_image_latents, batch));
    return unet(conditioned, t, step);
  };
}

LatentHook keep_unmasked_region(const InpaintLatents& inpaint, Scheduler& scheduler,
                                std::vector<double> timesteps) {
  const Tensor mask = repeat_channels(inpaint.mask, int(inpaint.image_latents.dim(1)));
  return [&scheduler, timesteps = std::move(timesteps), mask, image = inpaint.image_latents,
          noise = inpaint.noise](Tensor& latents, int step) {
    const size_t next = static_cast<size_t>(step) + 1;
    // The schedulers that track a step index noise to it here, whatever timestep is passed, as
    // diffusers' do once set_begin_index was called.
    const Tensor original =
        next < timesteps.size() ? scheduler.add_noise(image, noise, timesteps[next]) : image;
    latents = ops::evaluate((1.f - in(0)) * in(1) + in(0) * in(2), {mask, original, latents});
  };
}

}  // namespace diffuse::stages
