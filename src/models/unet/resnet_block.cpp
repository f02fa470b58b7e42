#include "models/unet/resnet_block.h"

#include "diffuse/error.hpp"

namespace diffuse::unet {

ResnetBlock2D ResnetBlock2D::load(const WeightStore& w, const std::string& prefix, int64_t in,
                                  int64_t out, int64_t temb_channels, int groups, float eps,
                                  double output_scale_factor) {
  using nn::join;
  ResnetBlock2D r;
  r.norm1 = nn::GroupNorm::load(w, join(prefix, "norm1"), in, groups, eps);
  r.conv1 = nn::Conv2d::load(w, join(prefix, "conv1"), in, out, 3, ops::Conv2dParams::same(1));
  if (temb_channels > 0)
    r.time_emb_proj = nn::Linear::load(w, join(prefix, "time_emb_proj"), temb_channels, out);
  r.norm2 = nn::GroupNorm::load(w, join(prefix, "norm2"), out, groups, eps);
  r.conv2 = nn::Conv2d::load(w, join(prefix, "conv2"), out, out, 3, ops::Conv2dParams::same(1));
  if (in != out)
    r.conv_shortcut = nn::Conv2d::load(w, join(prefix, "conv_shortcut"), in, out, 1, {});
  r.output_scale_factor = static_cast<float>(output_scale_factor);
  return r;
}

Tensor ResnetBlock2D::operator()(const Tensor& x, const Tensor* temb_act) const {
  Tensor h = conv1(norm1(x, /*fuse_silu=*/true));
  if (time_emb_proj) {
    if (!temb_act) throw ShapeError("ResnetBlock2D: time embedding required but not given");
    ops::add_channel_bias_(h, (*time_emb_proj)(*temb_act));
  }
  h = norm2(h, /*fuse_silu=*/true);
  h = conv2(h);
  if (conv_shortcut)
    ops::add_(h, (*conv_shortcut)(x));
  else
    ops::add_(h, x);
  // diffusers divides by the factor; SD uses 1, where skipping the op is exact.
  if (output_scale_factor != 1.f) ops::scale_(h, 1.f / output_scale_factor);
  return h;
}

}  // namespace diffuse::unet
