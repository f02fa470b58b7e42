#include "models/unet/resampling.h"

namespace diffuse::unet {

Downsample2D Downsample2D::load(const WeightStore& w, const std::string& prefix, int64_t channels,
                                int padding) {
  ops::Conv2dParams p = ops::Conv2dParams::same(padding, 2);
  if (padding == 0) {
    p.pad_bottom = 1;
    p.pad_right = 1;
  }
  return {nn::Conv2d::load(w, nn::join(prefix, "conv"), channels, channels, 3, p)};
}

Upsample2D Upsample2D::load(const WeightStore& w, const std::string& prefix, int64_t channels) {
  return {nn::Conv2d::load(w, nn::join(prefix, "conv"), channels, channels, 3,
                           ops::Conv2dParams::same(1))};
}

Tensor Upsample2D::operator()(const Tensor& x) const {
  return conv(ops::upsample_nearest_2x(x));
}

Tensor Upsample2D::operator()(const Tensor& x, int64_t out_h, int64_t out_w) const {
  return conv(ops::upsample_nearest(x, out_h, out_w));
}

}  // namespace diffuse::unet
