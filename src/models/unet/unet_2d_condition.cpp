#include "models/unet/unet_2d_condition.h"

#include "diffuse/error.hpp"
#include "models/unet/timestep_embedding.h"
#include "models/unet/unet_blocks.h"

namespace diffuse {

struct UNet2DConditionModel::Impl {
  UNetConfig config;
  int64_t context_dim = 0;
  nn::Linear time_linear_1, time_linear_2;
  nn::Linear add_linear_1, add_linear_2;  // add_embedding, with text_time only
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
  const int64_t ch0 = c.block_out_channels[0], temb = c.time_embedding_dim;
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

  m->time_linear_1 = nn::Linear::load(w, "time_embedding.linear_1", ch0, temb);
  m->time_linear_2 = nn::Linear::load(w, "time_embedding.linear_2", temb, temb);
  if (c.text_time_embedding) {
    m->add_linear_1 = nn::Linear::load(w, "add_embedding.linear_1",
                                       c.projection_class_embeddings_input_dim, temb);
    m->add_linear_2 = nn::Linear::load(w, "add_embedding.linear_2", temb, temb);
  }
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

// diffusers' text_time branch: add_embedding(concat(text_embeds, add_time_proj(time_ids) per
// batch item)), with add_time_proj the sinusoidal Timesteps(addition_time_embed_dim).
Tensor text_time_embedding(const UNetConfig& c, const nn::Linear& linear_1,
                           const nn::Linear& linear_2, const UNetAddedConditions* added,
                           int64_t batch) {
  if (!added)
    throw ShapeError("UNet: addition_embed_type text_time needs text_embeds and time_ids");
  require_f32_contiguous(added->text_embeds, "UNet text_embeds");
  require_shape(added->text_embeds, {batch, -1}, "UNet text_embeds");
  require_f32_contiguous(added->time_ids, "UNet time_ids");
  require_shape(added->time_ids, {batch, -1}, "UNet time_ids");
  const int64_t text_dim = added->text_embeds.dim(1), ids = added->time_ids.dim(1);
  if (text_dim + ids * c.addition_time_embed_dim != c.projection_class_embeddings_input_dim)
    throw ShapeError("UNet: text_embeds width " + std::to_string(text_dim) + " + " +
                     std::to_string(ids) + " time ids x addition_time_embed_dim " +
                     std::to_string(c.addition_time_embed_dim) +
                     " != projection_class_embeddings_input_dim " +
                     std::to_string(c.projection_class_embeddings_input_dim));
  // The ids are a handful of host-side numbers, embedded like timesteps (time_ids.flatten()).
  const std::vector<float> flat = added->time_ids.to_vector();
  const Tensor time_embeds =
      unet::timestep_embedding(std::vector<double>(flat.begin(), flat.end()),
                               c.addition_time_embed_dim, c.flip_sin_to_cos, c.freq_shift)
          .reshape({batch, ids * c.addition_time_embed_dim})
          .on(added->text_embeds.device());
  Tensor aug = linear_1(ops::concat(added->text_embeds, time_embeds, 1));
  ops::silu_(aug);
  return linear_2(aug);
}

}  // namespace

Tensor UNet2DConditionModel::forward(const Tensor& sample, const std::vector<double>& timesteps,
                                     const Tensor& encoder_hidden_states,
                                     const UNetAddedConditions* added) const {
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
  if (timesteps.size() != 1 && static_cast<int64_t>(timesteps.size()) != batch)
    throw ShapeError("UNet: " + std::to_string(timesteps.size()) + " timesteps for a batch of " +
                     std::to_string(batch));
  // diffusers broadcasts one timestep to the whole batch.
  const std::vector<double> t = timesteps.size() == 1
                                    ? std::vector<double>(static_cast<size_t>(batch), timesteps[0])
                                    : timesteps;

  // Time embedding; every resnet applies silu to it first, so do that once here.
  Tensor temb = m.time_linear_1(
      unet::timestep_embedding(t, c.block_out_channels[0], c.flip_sin_to_cos, c.freq_shift)
          .on(sample.device()));
  ops::silu_(temb);
  temb = m.time_linear_2(temb);
  if (c.text_time_embedding) {
    ops::add_(temb, text_time_embedding(c, m.add_linear_1, m.add_linear_2, added, batch));
  } else if (added) {
    throw ShapeError("UNet: added conditions given, but the config has no addition_embed_type");
  }
  ops::silu_(temb);

  // Skip connections live on this stack from the down path until the up block that consumes them.
  std::vector<Tensor> skips;
  Tensor x = m.conv_in(sample);
  skips.push_back(x);
  for (const auto& b : m.down) x = b.forward(std::move(x), temb, encoder_hidden_states, skips);
  x = m.mid.forward(std::move(x), temb, encoder_hidden_states);
  for (const auto& b : m.up) x = b.forward(std::move(x), temb, encoder_hidden_states, skips);
  x = m.conv_norm_out(x, /*fuse_silu=*/true);
  return m.conv_out(x);
}

}  // namespace diffuse
