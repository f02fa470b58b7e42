#include "models/unet/unet_blocks.h"

#include "diffuse/error.hpp"

namespace diffuse::unet {

namespace {

Transformer2DModel load_transformer(const WeightStore& w, const std::string& prefix,
                                    const UNetConfig& c, size_t level) {
  Transformer2DModel::Params p;
  p.channels = c.block_out_channels[level];
  p.heads = c.num_heads[level];
  p.head_dim = c.head_dim(level);
  p.context_dim = c.cross_attention_dim[level];
  p.layers = c.transformer_layers_per_block[level];
  p.groups = c.norm_num_groups;
  p.linear_projection = c.use_linear_projection;
  return Transformer2DModel::load(w, prefix, p);
}

std::string item(const std::string& prefix, const char* list, size_t i) {
  return nn::join(prefix, std::string(list) + "." + std::to_string(i));
}

}  // namespace

DownBlock DownBlock::load(const WeightStore& w, const std::string& prefix, const UNetConfig& c,
                          size_t level) {
  const int64_t out = c.block_out_channels[level];
  const int64_t in = level == 0 ? c.block_out_channels[0] : c.block_out_channels[level - 1];
  const auto eps = static_cast<float>(c.norm_eps);
  const bool attn = c.down_blocks[level] == UNetConfig::DownBlock::kCrossAttn;
  DownBlock b;
  for (int i = 0; i < c.layers_per_block[level]; ++i) {
    b.resnets.push_back(ResnetBlock2D::load(w, item(prefix, "resnets", size_t(i)),
                                            i == 0 ? in : out, out, c.time_embedding_dim,
                                            c.norm_num_groups, eps));
    if (attn)
      b.attentions.push_back(load_transformer(w, item(prefix, "attentions", size_t(i)), c, level));
  }
  if (level + 1 < c.levels())
    b.downsampler =
        Downsample2D::load(w, item(prefix, "downsamplers", 0), out, c.downsample_padding);
  return b;
}

Tensor DownBlock::forward(Tensor x, const Tensor& temb_act, const Tensor& context,
                          std::vector<Tensor>& skips) const {
  for (size_t i = 0; i < resnets.size(); ++i) {
    x = resnets[i](x, &temb_act);
    if (!attentions.empty()) x = attentions[i](x, context);
    skips.push_back(x);  // a view: shares the buffer with x, no copy
  }
  if (downsampler) {
    x = (*downsampler)(x);
    skips.push_back(x);
  }
  return x;
}

MidBlock MidBlock::load(const WeightStore& w, const std::string& prefix, const UNetConfig& c) {
  const size_t level = c.levels() - 1;
  const int64_t ch = c.block_out_channels[level];
  const auto eps = static_cast<float>(c.norm_eps);
  MidBlock b;
  // diffusers' UNetMidBlock2DCrossAttn has num_layers = 1: two resnets around one transformer.
  for (size_t i = 0; i < 2; ++i)
    b.resnets.push_back(ResnetBlock2D::load(w, item(prefix, "resnets", i), ch, ch,
                                            c.time_embedding_dim, c.norm_num_groups, eps,
                                            c.mid_block_scale_factor));
  b.attentions.push_back(load_transformer(w, item(prefix, "attentions", 0), c, level));
  return b;
}

Tensor MidBlock::forward(Tensor x, const Tensor& temb_act, const Tensor& context) const {
  x = resnets[0](x, &temb_act);
  for (size_t i = 0; i < attentions.size(); ++i) {
    x = attentions[i](x, context);
    x = resnets[i + 1](x, &temb_act);
  }
  return x;
}

UpBlock UpBlock::load(const WeightStore& w, const std::string& prefix, const UNetConfig& c,
                      size_t index) {
  const size_t n = c.levels(), level = n - 1 - index;
  const int64_t out = c.block_out_channels[level];
  // The channels coming up from the previous up block (the mid block for the first one), and the
  // channels of this level's input on the way down (the last skip this block consumes).
  const int64_t prev_out =
      index == 0 ? c.block_out_channels[n - 1] : c.block_out_channels[level + 1];
  const int64_t in = c.block_out_channels[level == 0 ? 0 : level - 1];
  const auto eps = static_cast<float>(c.norm_eps);
  const bool attn = c.up_blocks[index] == UNetConfig::UpBlock::kCrossAttn;
  const int layers = c.layers_per_block[level] + 1;
  UpBlock b;
  for (int i = 0; i < layers; ++i) {
    const int64_t skip = i == layers - 1 ? in : out;
    const int64_t res_in = i == 0 ? prev_out : out;
    b.resnets.push_back(ResnetBlock2D::load(w, item(prefix, "resnets", size_t(i)), res_in + skip,
                                            out, c.time_embedding_dim, c.norm_num_groups, eps));
    if (attn)
      b.attentions.push_back(load_transformer(w, item(prefix, "attentions", size_t(i)), c, level));
  }
  if (index + 1 < n) b.upsampler = Upsample2D::load(w, item(prefix, "upsamplers", 0), out);
  return b;
}

Tensor UpBlock::forward(Tensor x, const Tensor& temb_act, const Tensor& context,
                        std::vector<Tensor>& skips) const {
  for (size_t i = 0; i < resnets.size(); ++i) {
    if (skips.empty()) throw ShapeError("UNet up block: no skip connection left to consume");
    Tensor skip = std::move(skips.back());
    skips.pop_back();
    if (skip.dim(2) != x.dim(2) || skip.dim(3) != x.dim(3))
      throw ShapeError("UNet up block: activation " + x.shape().str() + " does not match skip " +
                       skip.shape().str());
    Tensor cat = ops::concat_channels(x, skip);
    x = Tensor();
    skip = Tensor();
    x = resnets[i](cat, &temb_act);
    cat = Tensor();
    if (!attentions.empty()) x = attentions[i](x, context);
  }
  if (upsampler) {
    // diffusers forwards the next skip's size whenever the latent is not a multiple of the total
    // downsampling (odd sizes halve with rounding up); otherwise it is exactly 2x.
    if (skips.empty())
      throw ShapeError("UNet up block: no skip connection left to size upsampling");
    x = (*upsampler)(x, skips.back().dim(2), skips.back().dim(3));
  }
  return x;
}

}  // namespace diffuse::unet
