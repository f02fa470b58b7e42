#include "models/vae/vae_decoder.h"

#include "core/allocator.h"

namespace diffuse::vae {

Decoder Decoder::load(const WeightStore& w, const std::string& prefix, const VaeConfig& c) {
  using nn::join;
  const auto& ch = c.block_out_channels;
  const size_t n = c.levels();
  Decoder d;
  d.conv_in = nn::Conv2d::load(w, join(prefix, "conv_in"), c.latent_channels, ch[n - 1], 3,
                               ops::Conv2dParams::same(1));
  d.mid_block = MidBlock::load(w, join(prefix, "mid_block"), ch[n - 1], c.norm_num_groups,
                               c.mid_block_add_attention);
  // Up block i works at level n-1-i, widening from the previous block's channels; it has one
  // resnet more than the encoder's blocks.
  for (size_t i = 0; i < n; ++i) {
    const int64_t out = ch[n - 1 - i], in = i == 0 ? ch[n - 1] : ch[n - i];
    d.up_blocks.push_back(UpDecoderBlock::load(w, join(prefix, "up_blocks." + std::to_string(i)),
                                               in, out, c.layers_per_block + 1, c.norm_num_groups,
                                               /*upsample=*/i + 1 < n));
  }
  d.conv_norm_out =
      nn::GroupNorm::load(w, join(prefix, "conv_norm_out"), ch[0], c.norm_num_groups, 1e-6f);
  d.conv_out = nn::Conv2d::load(w, join(prefix, "conv_out"), ch[0], c.out_channels, 3,
                                ops::Conv2dParams::same(1));
  return d;
}

Tensor Decoder::operator()(const Tensor& latents) const {
  Tensor x = conv_in(latents);
  x = mid_block(std::move(x));
  for (const auto& b : up_blocks) {
    x = b(std::move(x));
    // Each up block works on maps twice the size of the last one's: the blocks the previous
    // level freed fit nothing that follows, so they go back to the system now rather than at
    // the end of the stage (512², --precision int8 from an fp16 folder: peak RSS 2409 -> 2094 MiB).
    release_cached_memory();
  }
  x = conv_norm_out(x, /*fuse_silu=*/true);
  return conv_out(x);
}

}  // namespace diffuse::vae
