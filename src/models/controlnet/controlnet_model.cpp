#include "models/controlnet/controlnet_model.h"

#include <cmath>

#include "diffuse/error.hpp"
#include "models/unet/time_embedding.h"
#include "models/unet/unet_blocks.h"

namespace diffuse {

namespace {

// ControlNetConditioningEmbedding: conv_in, then per step a conv and a stride-2 conv (each
// followed by SiLU), then the zero-initialised conv_out to the UNet's first width.
struct ConditioningEmbedding {
  nn::Conv2d conv_in;
  std::vector<nn::Conv2d> blocks;
  nn::Conv2d conv_out;
  bool bgr = false;
  Tensor flip;  // [C, C, 1, 1] channel-reversing permutation, for "bgr"

  static ConditioningEmbedding load(const WeightStore& w, const ControlNetConfig& c);
  Tensor operator()(const Tensor& cond) const;
};

ConditioningEmbedding ConditioningEmbedding::load(const WeightStore& w, const ControlNetConfig& c) {
  const std::string p = "controlnet_cond_embedding.";
  const std::vector<int>& ch = c.conditioning_embedding_out_channels;
  const auto same = ops::Conv2dParams::same(1), down = ops::Conv2dParams::same(1, 2);
  ConditioningEmbedding e;
  e.conv_in = nn::Conv2d::load(w, p + "conv_in", c.conditioning_channels, ch[0], 3, same);
  for (size_t i = 0; i + 1 < ch.size(); ++i) {
    const std::string b = p + "blocks." + std::to_string(2 * i);
    e.blocks.push_back(nn::Conv2d::load(w, b, ch[i], ch[i], 3, same));
    e.blocks.push_back(
        nn::Conv2d::load(w, p + "blocks." + std::to_string(2 * i + 1), ch[i], ch[i + 1], 3, down));
  }
  e.conv_out =
      nn::Conv2d::load(w, p + "conv_out", ch.back(), c.unet.block_out_channels[0], 3, same);
  e.bgr = c.bgr;
  if (c.bgr) {
    // torch.flip(cond, dims=[1]) as a 1x1 convolution: each output channel is one input channel
    // times 1 plus the others times 0, which is exact for finite inputs.
    const int n = c.conditioning_channels;
    std::vector<float> perm(static_cast<size_t>(n * n), 0.f);
    for (int o = 0; o < n; ++o) perm[static_cast<size_t>(o * n + (n - 1 - o))] = 1.f;
    e.flip = Tensor::from_floats(perm.data(), {n, n, 1, 1});
  }
  return e;
}

Tensor ConditioningEmbedding::operator()(const Tensor& cond) const {
  Tensor x = bgr ? conv_in(ops::conv2d(cond, flip.on(cond.device()), nullptr, {})) : conv_in(cond);
  ops::silu_(x);
  for (const auto& b : blocks) {
    x = b(x);
    ops::silu_(x);
  }
  return conv_out(x);
}

// torch.mean(x, dim=(2, 3), keepdim=True): the sum over h * w as a matrix-vector product with
// ones, then divided by h * w.
Tensor spatial_mean(const Tensor& x) {
  const int64_t b = x.dim(0), ch = x.dim(1), hw = x.dim(2) * x.dim(3);
  const Tensor ones = Tensor::full({1, hw}, 1.f).on(x.device());
  const Tensor sum = ops::linear(x.reshape({b * ch, hw}), ones, nullptr);
  return ops::evaluate(ops::expr::in(0) / static_cast<float>(hw), {sum}).reshape({b, ch, 1, 1});
}

// diffusers' ControlNet feeds one encoder_hidden_states to every cross-attention of its down and
// mid blocks, so their context widths must agree.
int64_t context_dim(const UNetConfig& c) {
  const size_t n = c.levels();
  const int64_t dim = c.cross_attention_dim[n - 1];
  for (size_t i = 0; i < n; ++i)
    if (c.down_blocks[i] == UNetConfig::DownBlock::kCrossAttn && c.cross_attention_dim[i] != dim)
      throw ConfigError("ControlNet: cross_attention_dim differs between levels (" +
                        std::to_string(c.cross_attention_dim[i]) + " vs " + std::to_string(dim) +
                        "), which one encoder_hidden_states cannot feed");
  return dim;
}

// The channels of each skip connection the down path produces (conv_in's, then per level its
// resnets' and downsampler's): one zero convolution each.
std::vector<int64_t> skip_channels(const UNetConfig& c) {
  std::vector<int64_t> out{c.block_out_channels[0]};
  for (size_t l = 0; l < c.levels(); ++l) {
    const int layers = c.layers_per_block[l] + (l + 1 < c.levels() ? 1 : 0);
    out.insert(out.end(), static_cast<size_t>(layers), c.block_out_channels[l]);
  }
  return out;
}

}  // namespace

struct ControlNetModel::Impl {
  ControlNetConfig config;
  int64_t context_dim = 0;
  unet::TimeEmbedding time_embedding;
  nn::Conv2d conv_in;
  ConditioningEmbedding cond_embedding;
  std::vector<unet::DownBlock> down;
  unet::MidBlock mid;
  std::vector<nn::Conv2d> zero_convs;  // controlnet_down_blocks.N, one per skip connection
  nn::Conv2d mid_zero_conv;            // controlnet_mid_block
};

ControlNetModel ControlNetModel::load(const std::string& dir, AttentionKernel attention) {
  ControlNetConfig config = ControlNetConfig::load(dir + "/config.json");
  WeightStore weights = load_component_weights(dir);
  weights.set_attention_kernel(attention);
  return from_weights(std::move(config), weights);
}

ControlNetModel ControlNetModel::from_weights(ControlNetConfig config, const WeightStore& w) {
  auto m = std::make_shared<Impl>();
  const UNetConfig& c = config.unet;
  const size_t n = c.levels();
  const auto same = ops::Conv2dParams::same(1), pointwise = ops::Conv2dParams::same(0);
  m->context_dim = context_dim(c);
  m->time_embedding = unet::TimeEmbedding::load(w, c);
  m->conv_in = nn::Conv2d::load(w, "conv_in", c.in_channels, c.block_out_channels[0], 3, same);
  m->cond_embedding = ConditioningEmbedding::load(w, config);
  for (size_t i = 0; i < n; ++i)
    m->down.push_back(unet::DownBlock::load(w, "down_blocks." + std::to_string(i), c, i));
  m->mid = unet::MidBlock::load(w, "mid_block", c);
  const std::vector<int64_t> skips = skip_channels(c);
  for (size_t i = 0; i < skips.size(); ++i)
    m->zero_convs.push_back(nn::Conv2d::load(w, "controlnet_down_blocks." + std::to_string(i),
                                             skips[i], skips[i], 1, pointwise));
  const int64_t mid_ch = c.block_out_channels[n - 1];
  m->mid_zero_conv = nn::Conv2d::load(w, "controlnet_mid_block", mid_ch, mid_ch, 1, pointwise);
  m->config = std::move(config);
  ControlNetModel model;
  model.impl_ = std::move(m);
  return model;
}

const ControlNetModel::Impl& ControlNetModel::loaded() const {
  if (!impl_) throw Error("ControlNetModel used before load()");
  return *impl_;
}

const ControlNetConfig& ControlNetModel::config() const {
  return loaded().config;
}

std::vector<float> controlnet_guess_mode_scales(size_t count, float scale) {
  // torch's CPU logspace: exponents in double, stepping from the start for the first half and
  // back from the end for the second, then pow(10, e) rounded to float32.
  std::vector<float> out;
  const double start = -1.0, end = 0.0;
  const double step = count > 1 ? (end - start) / static_cast<double>(count - 1) : 0.0;
  for (size_t i = 0; i < count; ++i) {
    const double e = i < count / 2 ? start + step * static_cast<double>(i)
                                   : end - step * static_cast<double>(count - i - 1);
    out.push_back(static_cast<float>(std::pow(10.0, e)) * scale);
  }
  return out;
}

namespace {

void check_inputs(const ControlNetConfig& config, int64_t context_dim, const Tensor& sample,
                  const Tensor& ctx, const Tensor& cond) {
  const UNetConfig& c = config.unet;
  require_f32_contiguous(sample, "ControlNet sample");
  require_f32_contiguous(ctx, "ControlNet encoder_hidden_states");
  require_f32_contiguous(cond, "ControlNet controlnet_cond");
  if (sample.ndim() != 4 || sample.dim(1) != c.in_channels || sample.dim(2) < 1 ||
      sample.dim(3) < 1)
    throw ShapeError("ControlNet: sample must be [B, " + std::to_string(c.in_channels) +
                     ", h, w], got " + sample.shape().str());
  const int64_t batch = sample.dim(0);
  require_shape(ctx, {batch, -1, context_dim}, "ControlNet encoder_hidden_states");
  if (cond.ndim() != 4 || cond.dim(0) != batch || cond.dim(1) != config.conditioning_channels ||
      cond.dim(2) < 1 || cond.dim(3) < 1)
    throw ShapeError("ControlNet: controlnet_cond must be [" + std::to_string(batch) + ", " +
                     std::to_string(config.conditioning_channels) + ", H, W], got " +
                     cond.shape().str());
  // Each stride-2 3x3 convolution (padding 1) maps a size s to (s - 1) / 2 + 1; the embedding
  // is added to conv_in(sample), so it must come out at the latent's size.
  int64_t h = cond.dim(2), w = cond.dim(3);
  for (size_t i = 1; i < config.conditioning_embedding_out_channels.size(); ++i) {
    h = (h - 1) / 2 + 1;
    w = (w - 1) / 2 + 1;
  }
  if (h != sample.dim(2) || w != sample.dim(3)) {
    const int64_t f = config.downscale();
    throw ShapeError("ControlNet: controlnet_cond is " + std::to_string(cond.dim(2)) + "x" +
                     std::to_string(cond.dim(3)) + ", which the conditioning embedding reduces " +
                     "to " + std::to_string(h) + "x" + std::to_string(w) + ", not the latent's " +
                     std::to_string(sample.dim(2)) + "x" + std::to_string(sample.dim(3)) +
                     ": the control image must be " + std::to_string(f) + "x the latent size (" +
                     std::to_string(f * sample.dim(2)) + "x" + std::to_string(f * sample.dim(3)) +
                     ")");
  }
}

// diffusers' step 6: the scale (or guess mode's ramp), then global pooling.
void scale_residuals(const ControlNetConfig& c, ControlNetOutput& out, float scale, bool guess) {
  if (guess && !c.global_pool_conditions) {
    const std::vector<float> s = controlnet_guess_mode_scales(out.down.size() + 1, scale);
    for (size_t i = 0; i < out.down.size(); ++i) ops::scale_(out.down[i], s[i]);
    ops::scale_(out.mid, s.back());
  } else {
    for (auto& d : out.down) ops::scale_(d, scale);
    ops::scale_(out.mid, scale);
  }
  if (c.global_pool_conditions) {
    for (auto& d : out.down) d = spatial_mean(d);
    out.mid = spatial_mean(out.mid);
  }
}

}  // namespace

ControlNetOutput ControlNetModel::forward(const Tensor& sample,
                                          const std::vector<double>& timesteps,
                                          const Tensor& encoder_hidden_states,
                                          const Tensor& controlnet_cond, float conditioning_scale,
                                          bool guess_mode, const UNetAddedConditions* added) const {
  const Impl& m = loaded();
  const UNetConfig& c = m.config.unet;
  check_inputs(m.config, m.context_dim, sample, encoder_hidden_states, controlnet_cond);
  const Tensor temb =
      m.time_embedding(c, timesteps, sample.dim(0), sample.device(), added, "ControlNet");

  std::vector<Tensor> skips;
  Tensor x = m.conv_in(sample);
  ops::add_(x, m.cond_embedding(controlnet_cond));
  skips.push_back(x);
  for (const auto& b : m.down) x = b.forward(std::move(x), temb, encoder_hidden_states, skips);
  x = m.mid.forward(std::move(x), temb, encoder_hidden_states);
  if (skips.size() != m.zero_convs.size())
    throw Error("ControlNet: " + std::to_string(skips.size()) + " skip connections for " +
                std::to_string(m.zero_convs.size()) + " zero convolutions");

  ControlNetOutput out;
  for (size_t i = 0; i < skips.size(); ++i) {
    out.down.push_back(m.zero_convs[i](skips[i]));
    skips[i] = Tensor();  // release each activation once its residual exists
  }
  out.mid = m.mid_zero_conv(x);
  scale_residuals(m.config, out, conditioning_scale, guess_mode);
  return out;
}

}  // namespace diffuse
