#include "pipeline/hires_fix.h"

#include <algorithm>
#include <vector>

#include "backend/ops.h"

namespace diffuse::stages {

namespace {

/// torch's area_pixel_compute_source_index for align_corners=False (linear modes), in float.
struct Tap {
  int64_t i0, i1;
  float lambda;
};
std::vector<Tap> bilinear_taps(int64_t in, int64_t out) {
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  std::vector<Tap> taps(static_cast<size_t>(out));
  for (int64_t d = 0; d < out; ++d) {
    const float src = std::max(scale * (static_cast<float>(d) + 0.5f) - 0.5f, 0.f);
    const auto i0 = std::min(static_cast<int64_t>(src), in - 1);
    const int64_t i1 = std::min(i0 + 1, in - 1);
    taps[static_cast<size_t>(d)] = {i0, i1, src - static_cast<float>(i0)};
  }
  return taps;
}

}  // namespace

Tensor upscale_latents(const Tensor& latents, int64_t out_h, int64_t out_w, bool bilinear) {
  if (!bilinear) return ops::upsample_nearest(latents, out_h, out_w);
  // Latents are small (4 x h/8 x w/8): interpolated on the host, as torch's CPU kernel does.
  const int64_t planes = latents.dim(0) * latents.dim(1), h = latents.dim(2), w = latents.dim(3);
  const std::vector<float> x = latents.to_vector();
  const std::vector<Tap> ty = bilinear_taps(h, out_h), tx = bilinear_taps(w, out_w);
  std::vector<float> y(static_cast<size_t>(planes * out_h * out_w));
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oy = 0; oy < out_h; ++oy)
      for (int64_t ox = 0; ox < out_w; ++ox) {
        const Tap& a = ty[size_t(oy)];
        const Tap& b = tx[size_t(ox)];
        const float* plane = x.data() + p * h * w;
        const float top =
            (1.f - b.lambda) * plane[a.i0 * w + b.i0] + b.lambda * plane[a.i0 * w + b.i1];
        const float bottom =
            (1.f - b.lambda) * plane[a.i1 * w + b.i0] + b.lambda * plane[a.i1 * w + b.i1];
        y[size_t((p * out_h + oy) * out_w + ox)] = (1.f - a.lambda) * top + a.lambda * bottom;
      }
  return Tensor::from_floats(y.data(), {latents.dim(0), latents.dim(1), out_h, out_w})
      .on(latents.device());
}

}  // namespace diffuse::stages
