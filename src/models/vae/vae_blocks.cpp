#include "models/vae/vae_blocks.h"

namespace diffuse::vae {

namespace {

constexpr float kEps = 1e-6f;  // diffusers' Encoder/Decoder pass resnet_eps=1e-6 everywhere

std::string item(const std::string& prefix, const char* list, size_t i) {
  return nn::join(prefix, std::string(list) + "." + std::to_string(i));
}

// A C -> C projection under its current name, or under the pre-0.14 one when only that exists.
// When neither exists the current name is used, so the FileError names the key diffusers writes
// today (and synthetic weight stores get the current names).
nn::Linear load_square_projection(const WeightStore& w, const std::string& prefix,
                                  const std::string& name, const std::string& legacy_name,
                                  int64_t channels) {
  std::string p = nn::join(prefix, name);
  const std::string legacy = nn::join(prefix, legacy_name);
  if (!w.contains(p + ".weight") && w.contains(legacy + ".weight")) p = legacy;
  // Weights converted from the original LDM layout may still be 1x1 convolutions.
  const bool as_conv = w.contains(p + ".weight") && w.raw(p + ".weight").ndim() == 4;
  return unet::load_projection(w, p, channels, channels, as_conv);
}

}  // namespace

SpatialAttention SpatialAttention::load(const WeightStore& w, const std::string& prefix,
                                        int64_t channels, int groups) {
  SpatialAttention a;
  a.group_norm = nn::GroupNorm::load(w, nn::join(prefix, "group_norm"), channels, groups, kEps);
  a.attn.to_q = load_square_projection(w, prefix, "to_q", "query", channels);
  a.attn.to_k = load_square_projection(w, prefix, "to_k", "key", channels);
  a.attn.to_v = load_square_projection(w, prefix, "to_v", "value", channels);
  a.attn.to_out = load_square_projection(w, prefix, "to_out.0", "proj_attn", channels);
  a.attn.heads = 1;  // attention_head_dim = channels in diffusers' Encoder/Decoder
  a.attn.kernel = w.attention_kernel();
  return a;
}

Tensor SpatialAttention::operator()(const Tensor& x) const {
  const int64_t h = x.dim(2), wd = x.dim(3);
  Tensor t = ops::nchw_to_nlc(group_norm(x));
  t = attn(t, t);
  Tensor out = ops::nlc_to_nchw(t, h, wd);
  t = Tensor();
  ops::add_(out, x);  // residual_connection=True, rescale_output_factor=1
  return out;
}

MidBlock MidBlock::load(const WeightStore& w, const std::string& prefix, int64_t channels,
                        int groups, bool add_attention) {
  using unet::ResnetBlock2D;
  MidBlock m;
  m.resnet0 =
      ResnetBlock2D::load(w, item(prefix, "resnets", 0), channels, channels, 0, groups, kEps);
  if (add_attention)
    m.attention = SpatialAttention::load(w, item(prefix, "attentions", 0), channels, groups);
  m.resnet1 =
      ResnetBlock2D::load(w, item(prefix, "resnets", 1), channels, channels, 0, groups, kEps);
  return m;
}

Tensor MidBlock::operator()(Tensor x) const {
  x = resnet0(x, nullptr);
  if (attention) x = (*attention)(x);
  return resnet1(x, nullptr);
}

DownEncoderBlock DownEncoderBlock::load(const WeightStore& w, const std::string& prefix, int64_t in,
                                        int64_t out, int layers, int groups, bool downsample) {
  DownEncoderBlock b;
  for (int i = 0; i < layers; ++i)
    b.resnets.push_back(unet::ResnetBlock2D::load(w, item(prefix, "resnets", size_t(i)),
                                                  i == 0 ? in : out, out, 0, groups, kEps));
  // padding 0: diffusers pads (0, 1, 0, 1) by hand before the stride-2 conv.
  if (downsample)
    b.downsampler = unet::Downsample2D::load(w, item(prefix, "downsamplers", 0), out, 0);
  return b;
}

Tensor DownEncoderBlock::operator()(Tensor x) const {
  for (const auto& r : resnets) x = r(x, nullptr);
  if (downsampler) x = (*downsampler)(x);
  return x;
}

UpDecoderBlock UpDecoderBlock::load(const WeightStore& w, const std::string& prefix, int64_t in,
                                    int64_t out, int layers, int groups, bool upsample) {
  UpDecoderBlock b;
  for (int i = 0; i < layers; ++i)
    b.resnets.push_back(unet::ResnetBlock2D::load(w, item(prefix, "resnets", size_t(i)),
                                                  i == 0 ? in : out, out, 0, groups, kEps));
  if (upsample) b.upsampler = unet::Upsample2D::load(w, item(prefix, "upsamplers", 0), out);
  return b;
}

Tensor UpDecoderBlock::operator()(Tensor x) const {
  for (const auto& r : resnets) x = r(x, nullptr);
  if (upsampler) x = (*upsampler)(x);
  return x;
}

}  // namespace diffuse::vae
