#include "models/vae/vae_encoder.h"

namespace diffuse::vae {

Encoder Encoder::load(const WeightStore& w, const std::string& prefix, const VaeConfig& c) {
  using nn::join;
  const auto& ch = c.block_out_channels;
  const size_t n = c.levels();
  Encoder e;
  e.conv_in = nn::Conv2d::load(w, join(prefix, "conv_in"), c.in_channels, ch[0], 3,
                               ops::Conv2dParams::same(1));
  for (size_t i = 0; i < n; ++i)
    e.down_blocks.push_back(DownEncoderBlock::load(
        w, join(prefix, "down_blocks." + std::to_string(i)), i == 0 ? ch[0] : ch[i - 1], ch[i],
        c.layers_per_block, c.norm_num_groups, /*downsample=*/i + 1 < n));
  e.mid_block = MidBlock::load(w, join(prefix, "mid_block"), ch[n - 1], c.norm_num_groups,
                               c.mid_block_add_attention);
  e.conv_norm_out =
      nn::GroupNorm::load(w, join(prefix, "conv_norm_out"), ch[n - 1], c.norm_num_groups, 1e-6f);
  // double_z: mean and log-variance
  e.conv_out = nn::Conv2d::load(w, join(prefix, "conv_out"), ch[n - 1], 2 * c.latent_channels, 3,
                                ops::Conv2dParams::same(1));
  return e;
}

Tensor Encoder::operator()(const Tensor& image) const {
  Tensor x = conv_in(image);
  for (const auto& b : down_blocks) x = b(std::move(x));
  x = mid_block(std::move(x));
  x = conv_norm_out(x, /*fuse_silu=*/true);
  return conv_out(x);
}

}  // namespace diffuse::vae
