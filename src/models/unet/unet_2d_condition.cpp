#include "models/unet/unet_2d_condition.h"

#include "diffuse/error.hpp"
#include "models/unet/time_embedding.h"
#include "models/unet/unet_blocks.h"

namespace diffuse {

struct UNet2DConditionModel::Impl {
  UNetConfig config;
  int64_t context_dim = 0;
  unet::TimeEmbedding time_embedding;
  nn::Conv2d conv_in;
  std::vector<unet::DownBlock> down;
  unet::MidBlock mid;
  std::vector<unet::UpBlock> up;
  nn::GroupNorm conv_norm_out;
  nn::Conv2d conv_out;
};

UNet2DConditionModel UNet2DConditionModel::load(const std::string& dir) {
  UNetConfig config = UNetConfig::load(dir + "/config.json");
  return from_weights(std::move(config), load_component_weights(dir));
}

UNet2DConditionModel UNet2DConditionModel::from_weights(UNetConfig c, const WeightStore& w) {
  auto m = std::make_shared<Impl>();
  const size_t n = c.levels();
  const int64_t ch0 = c.block_out_channels[0];
  // One encoder_hidden_states feeds every cross-attention, so their context widths must agree
  // (diffusers allows a per-level list, but a differing one could never be called).
  m->context_dim = c.cross_attention_dim[n - 1];
  for (size_t i = 0; i < n; ++i) {
    const bool attends = c.down_blocks[i] == UNetConfig::DownBlock::kCrossAttn ||
                         c.up_blocks[n - 1 - i] == UNetConfig::UpBlock::kCrossAttn;
    if (attends && c.cross_attention_dim[i] != m->context_dim)
      throw ConfigError("UNet: cross_attention_dim differs between levels (" +
                        std::to_string(c.cross_attention_dim[i]) + " vs " +
                        std::to_string(m->context_dim) + "), which one encoder_hidden_states " +
                        "cannot feed");
  }

  m->time_embedding = unet::TimeEmbedding::load(w, c);
  m->conv_in = nn::Conv2d::load(w, "conv_in", c.in_channels, ch0, c.conv_in_kernel,
                                ops::Conv2dParams::same((c.conv_in_kernel - 1) / 2));
  for (size_t i = 0; i < n; ++i)
    m->down.push_back(unet::DownBlock::load(w, "down_blocks." + std::to_string(i), c, i));
  m->mid = unet::MidBlock::load(w, "mid_block", c);
  for (size_t i = 0; i < n; ++i)
    m->up.push_back(unet::UpBlock::load(w, "up_blocks." + std::to_string(i), c, i));
  m->conv_norm_out = nn::GroupNorm::load(w, "conv_norm_out", ch0, c.norm_num_groups,
                                         static_cast<float>(c.norm_eps));
  m->conv_out = nn::Conv2d::load(w, "conv_out", ch0, c.out_channels, c.conv_out_kernel,
                                 ops::Conv2dParams::same((c.conv_out_kernel - 1) / 2));
  m->config = std::move(c);
  UNet2DConditionModel model;
  model.impl_ = std::move(m);
  return model;
}

const UNet2DConditionModel::Impl& UNet2DConditionModel::loaded() const {
  // A default-constructed model (e.g. a member assigned later) has no weights yet.
  if (!impl_) throw Error("UNet2DConditionModel used before load()");
  return *impl_;
}

const UNetConfig& UNet2DConditionModel::config() const {
  return loaded().config;
}

namespace {

// The skip connections the down path produces: conv_in's output, then per level its resnet
// outputs and (all levels but the last) its downsampler output.
size_t skip_count(const UNetConfig& c) {
  size_t n = 1;
  for (size_t l = 0; l < c.levels(); ++l)
    n += static_cast<size_t>(c.layers_per_block[l]) + (l + 1 < c.levels() ? 1 : 0);
  return n;
}

// A residual of a global-pooling ControlNet: [B, C, 1, 1] against x's [B, C, h, w].
bool is_pooled_for(const Tensor& r, const Tensor& x) {
  return r.ndim() == 4 && x.ndim() == 4 && r.dim(0) == x.dim(0) && r.dim(1) == x.dim(1) &&
         r.dim(2) == 1 && r.dim(3) == 1;
}

// x + r as torch broadcasts it (r equal in shape to x, or pooled), out of place: a skip connection
// is a view sharing its buffer with the activation that continues down the network.
Tensor add_residual(const Tensor& x, const Tensor& r, const std::string& what) {
  require_f32_contiguous(r, what.c_str());
  if (r.shape() == x.shape()) return ops::add(x, r);
  if (!is_pooled_for(r, x))
    throw ShapeError(what + " is " + r.shape().str() + ", which neither matches " +
                     x.shape().str() + " nor broadcasts over it as [B, C, 1, 1]");
  Tensor out = Tensor::empty(x.shape(), DType::F32, x.device());
  ops::copy_(out, x);
  ops::add_channel_bias_(out, r.reshape({r.dim(0), r.dim(1)}));
  return out;
}

void check_residual_count(const UNetConfig& c, const UNetResiduals& r) {
  if (r.down.size() != skip_count(c))
    throw ShapeError("UNet: " + std::to_string(r.down.size()) + " down residuals for " +
                     std::to_string(skip_count(c)) + " skip connections");
  if (!r.mid.defined() || r.mid.ndim() == 0)
    throw ShapeError("UNet: the mid block residual is missing");
}

}  // namespace

UNetResiduals add_residuals(const UNetResiduals& a, const UNetResiduals& b) {
  if (a.down.size() != b.down.size())
    throw ShapeError("ControlNet residuals: cannot add " + std::to_string(a.down.size()) +
                     " down residuals to " + std::to_string(b.down.size()));
  // Float addition commutes exactly, so the pooled operand can always be the one broadcast.
  auto sum = [](const Tensor& x, const Tensor& y, const std::string& what) {
    require_f32_contiguous(x, what.c_str());
    require_f32_contiguous(y, what.c_str());
    return is_pooled_for(x, y) && x.shape() != y.shape() ? add_residual(y, x, what)
                                                         : add_residual(x, y, what);
  };
  UNetResiduals out;
  for (size_t i = 0; i < a.down.size(); ++i)
    out.down.push_back(
        sum(a.down[i], b.down[i], "ControlNet residuals: down residual " + std::to_string(i)));
  out.mid = sum(a.mid, b.mid, "ControlNet residuals: mid residual");
  return out;
}

Tensor UNet2DConditionModel::forward(const Tensor& sample, const std::vector<double>& timesteps,
                                     const Tensor& encoder_hidden_states,
                                     const UNetAddedConditions* added,
                                     const UNetResiduals* residuals) const {
  const Impl& m = loaded();
  const UNetConfig& c = m.config;
  require_f32_contiguous(sample, "UNet sample");
  require_f32_contiguous(encoder_hidden_states, "UNet encoder_hidden_states");
  if (sample.ndim() != 4 || sample.dim(1) != c.in_channels || sample.dim(2) < 1 ||
      sample.dim(3) < 1)
    throw ShapeError("UNet: sample must be [B, " + std::to_string(c.in_channels) + ", h, w], got " +
                     sample.shape().str());
  const int64_t batch = sample.dim(0);
  require_shape(encoder_hidden_states, {batch, -1, m.context_dim}, "UNet encoder_hidden_states");
  if (residuals) check_residual_count(c, *residuals);
  const Tensor temb = m.time_embedding(c, timesteps, batch, sample.device(), added, "UNet");

  // Skip connections live on this stack from the down path until the up block that consumes them.
  std::vector<Tensor> skips;
  Tensor x = m.conv_in(sample);
  skips.push_back(x);
  for (const auto& b : m.down) x = b.forward(std::move(x), temb, encoder_hidden_states, skips);
  // diffusers adds the ControlNet residuals to the skips only: the mid block still gets x as is.
  for (size_t i = 0; residuals && i < skips.size(); ++i)
    skips[i] =
        add_residual(skips[i], residuals->down[i], "UNet down residual " + std::to_string(i));
  x = m.mid.forward(std::move(x), temb, encoder_hidden_states);
  if (residuals) x = add_residual(x, residuals->mid, "UNet mid residual");
  for (const auto& b : m.up) x = b.forward(std::move(x), temb, encoder_hidden_states, skips);
  x = m.conv_norm_out(x, /*fuse_silu=*/true);
  return m.conv_out(x);
}

}  // namespace diffuse
