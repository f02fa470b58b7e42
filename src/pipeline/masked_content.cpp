#include "pipeline/masked_content.h"

#include <cmath>
#include <utility>
#include <vector>

#include "backend/ops.h"
#include "io/image_filters.h"
#include "io/image_resize.h"
#include "io/pil_compositing.h"
#include "pipeline/stages.h"

namespace diffuse::stages {

using ops::expr::in;

bool is_masked_content(const std::string& mode) {
  return mode == "original" || mode == "fill" || mode == "latent-noise" || mode == "latent-nothing";
}

Rgb8Image fill_masked_region(const Rgb8Image& image, const Rgb8Image& mask) {
  std::vector<uint8_t> opacity = to_grayscale(mask);
  for (uint8_t& v : opacity) v = static_cast<uint8_t>(255 - v);
  const Rgba8Image masked = paste_through_mask(image, opacity);  // premultiplied ("RGBa")
  Rgba8Image out{image.width, image.height,
                 std::vector<uint8_t>(static_cast<size_t>(image.width) * image.height * 4, 0)};
  constexpr std::pair<float, int> kLayers[] = {{256.f, 1}, {64.f, 1}, {16.f, 2},
                                               {4.f, 4},   {2.f, 2},  {0.f, 1}};
  for (const auto& [radius, repeats] : kLayers) {
    const Rgba8Image blurred = unpremultiply(gaussian_blur(masked, radius));
    for (int k = 0; k < repeats; ++k) alpha_composite(out, blurred);
  }
  return drop_alpha(out);
}

Tensor latent_region(const Rgb8Image& mask, int64_t h, int64_t w, Device device) {
  const Rgb8Image small = resize(mask, static_cast<int>(w), static_cast<int>(h),
                                 ResizeBox{0, 0, mask.width, mask.height}, ResizeFilter::bicubic);
  std::vector<float> region(static_cast<size_t>(h * w));
  for (size_t i = 0; i < region.size(); ++i)
    region[i] = std::nearbyint(static_cast<float>(small.pixels[i * 3]) / 255.f);  // np.around
  return Tensor::from_floats(region.data(), {1, 1, h, w}).on(device);
}

Tensor replace_latent_region(const Tensor& image_latents, const Tensor& region,
                             const std::string& mode, RandomSource& rng) {
  if (mode != "latent-noise" && mode != "latent-nothing") return image_latents;
  Tensor mask = region;
  for (int64_t c = 1; c < image_latents.dim(1); ++c) mask = ops::concat_channels(mask, region);
  mask = ops::repeat_batch(mask, image_latents.dim(0));
  if (mode == "latent-nothing") return ops::evaluate(in(0) * (1.f - in(1)), {image_latents, mask});
  const Tensor noise = rng.randn(image_latents.shape()).on(image_latents.device());
  return ops::evaluate(in(0) * (1.f - in(1)) + in(2) * in(1), {image_latents, mask, noise});
}

MaskedStart masked_start(const GenerateOptions& o, const Tensor& image, int vae_scale_factor,
                         Device device) {
  if (o.masked_content == "original") return {image, {}};
  const Rgb8Image mask = mask_at_size(*o.mask_image, o.width, o.height, o.mask_blur);
  if (o.masked_content == "fill") {
    const Rgb8Image filled = fill_masked_region(
        {o.init_image->width, o.init_image->height, o.init_image->to_rgb8()}, mask);
    return {image_to_tensor(Image::from_rgb8(filled.width, filled.height, filled.pixels), device),
            {}};
  }
  const Tensor region =
      latent_region(mask, o.height / vae_scale_factor, o.width / vae_scale_factor, device);
  return {image, [region, mode = o.masked_content, rng = o.rng, seed = o.seed](const Tensor& x) {
            auto noise = make_random_source(rng, seed);
            return replace_latent_region(x, region, mode, *noise);
          }};
}

}  // namespace diffuse::stages
