#include "models/vae/vae_tiling.h"

#include <algorithm>
#include <vector>

#include "backend/ops.h"
#include "diffuse/error.hpp"

namespace diffuse::vae {

namespace {

using ops::expr::in;

/// The cross-fade weights of diffusers' blend_v / blend_h over `extent` rows or columns of a band
/// shaped `band`: the earlier tile's value weighs (1 - i/extent), the later tile's i/extent, each
/// rounded to float32 as torch does when it multiplies a float tensor by a Python float.
std::pair<Tensor, Tensor> fade_weights(const Shape& band, int dim, int64_t extent) {
  Tensor fade_out = Tensor::empty(band), fade_in = Tensor::empty(band);
  const int64_t h = band[2], w = band[3], plane = h * w;
  for (int64_t i = 0; i < band.numel(); ++i) {
    const int64_t pos = dim == 2 ? (i % plane) / w : i % w;
    const double t = static_cast<double>(pos) / static_cast<double>(extent);
    fade_out.f32()[i] = static_cast<float>(1.0 - t);
    fade_in.f32()[i] = static_cast<float>(t);
  }
  return {fade_out, fade_in};
}

/// diffusers' blend_v (dim 2) / blend_h (dim 3): the first `extent` rows (columns) of `later`
/// become a cross-fade from the last `extent` rows (columns) of `earlier`.
Tensor blend(const Tensor& earlier, const Tensor& later, int dim, int64_t extent) {
  extent = std::min({earlier.dim(dim), later.dim(dim), extent});
  if (extent <= 0) return later;
  const Tensor a = earlier.narrow(dim, earlier.dim(dim) - extent, extent).contiguous();
  const Tensor b = later.narrow(dim, 0, extent).contiguous();
  auto [fade_out, fade_in] = fade_weights(a.shape(), dim, extent);
  const Tensor mixed = ops::evaluate(in(0) * in(2) + in(1) * in(3),
                                     {a, b, fade_out.on(a.device()), fade_in.on(a.device())});
  if (extent == later.dim(dim)) return mixed;
  return ops::concat(mixed, later.narrow(dim, extent, later.dim(dim) - extent).contiguous(), dim);
}

Tensor top_left(const Tensor& x, int64_t rows, int64_t cols) {
  return x.narrow(2, 0, std::min(rows, x.dim(2)))
      .narrow(3, 0, std::min(cols, x.dim(3)))
      .contiguous();
}

}  // namespace

Tensor tiled_decode(const Tensor& latents, const TileGrid& grid,
                    const std::function<Tensor(const Tensor&)>& decode_tile) {
  const auto step =
      static_cast<int64_t>(static_cast<float>(grid.tile_latent) * (1.f - grid.overlap));
  const auto extent = static_cast<int64_t>(static_cast<float>(grid.tile_sample) * grid.overlap);
  const int64_t keep = grid.tile_sample - extent;
  if (step <= 0 || keep <= 0)
    throw ConfigError("VAE tiling: tiles of " + std::to_string(grid.tile_latent) +
                      " latents with overlap " + std::to_string(grid.overlap) + " do not advance");
  const int64_t h = latents.dim(2), w = latents.dim(3);
  std::vector<Tensor> above;  // the previous row's tiles, blended
  Tensor image;
  for (int64_t i = 0; i < h; i += step) {
    std::vector<Tensor> row;
    Tensor strip;
    for (int64_t j = 0, col = 0; j < w; j += step, ++col) {
      const Tensor z = latents.narrow(2, i, std::min(grid.tile_latent, h - i))
                           .narrow(3, j, std::min(grid.tile_latent, w - j))
                           .contiguous();
      Tensor tile = decode_tile(z);
      if (!above.empty()) tile = blend(above[static_cast<size_t>(col)], tile, 2, extent);
      if (!row.empty()) tile = blend(row.back(), tile, 3, extent);
      const Tensor kept = top_left(tile, keep, keep);
      strip = strip.defined() ? ops::concat(strip, kept, 3) : kept;
      row.push_back(std::move(tile));
    }
    image = image.defined() ? ops::concat(image, strip, 2) : strip;
    above = std::move(row);
  }
  return image;
}

}  // namespace diffuse::vae
