#include "models/unet/time_embedding.h"

#include <string>

#include "diffuse/error.hpp"
#include "models/unet/timestep_embedding.h"

namespace diffuse::unet {

namespace {

// diffusers' text_time branch: add_embedding(concat(text_embeds, add_time_proj(time_ids) per
// batch item)), with add_time_proj the sinusoidal Timesteps(addition_time_embed_dim).
Tensor text_time_embedding(const UNetConfig& c, const TimeEmbedding& e,
                           const UNetAddedConditions* added, int64_t batch,
                           const std::string& model) {
  if (!added)
    throw ShapeError(model + ": addition_embed_type text_time needs text_embeds and time_ids");
  const std::string text_what = model + " text_embeds", ids_what = model + " time_ids";
  require_f32_contiguous(added->text_embeds, text_what.c_str());
  require_shape(added->text_embeds, {batch, -1}, text_what.c_str());
  require_f32_contiguous(added->time_ids, ids_what.c_str());
  require_shape(added->time_ids, {batch, -1}, ids_what.c_str());
  const int64_t text_dim = added->text_embeds.dim(1), ids = added->time_ids.dim(1);
  if (text_dim + ids * c.addition_time_embed_dim != c.projection_class_embeddings_input_dim)
    throw ShapeError(model + ": text_embeds width " + std::to_string(text_dim) + " + " +
                     std::to_string(ids) + " time ids x addition_time_embed_dim " +
                     std::to_string(c.addition_time_embed_dim) +
                     " != projection_class_embeddings_input_dim " +
                     std::to_string(c.projection_class_embeddings_input_dim));
  // The ids are a handful of host-side numbers, embedded like timesteps (time_ids.flatten()).
  const std::vector<float> flat = added->time_ids.to_vector();
  const Tensor time_embeds =
      timestep_embedding(std::vector<double>(flat.begin(), flat.end()), c.addition_time_embed_dim,
                         c.flip_sin_to_cos, c.freq_shift)
          .reshape({batch, ids * c.addition_time_embed_dim})
          .on(added->text_embeds.device());
  Tensor aug = e.add_linear_1(ops::concat(added->text_embeds, time_embeds, 1));
  ops::silu_(aug);
  return e.add_linear_2(aug);
}

}  // namespace

TimeEmbedding TimeEmbedding::load(const WeightStore& w, const UNetConfig& c) {
  const int64_t ch0 = c.block_out_channels[0], temb = c.time_embedding_dim;
  TimeEmbedding e;
  e.linear_1 = nn::Linear::load(w, "time_embedding.linear_1", ch0, temb);
  e.linear_2 = nn::Linear::load(w, "time_embedding.linear_2", temb, temb);
  if (c.text_time_embedding) {
    e.add_linear_1 = nn::Linear::load(w, "add_embedding.linear_1",
                                      c.projection_class_embeddings_input_dim, temb);
    e.add_linear_2 = nn::Linear::load(w, "add_embedding.linear_2", temb, temb);
  }
  return e;
}

Tensor TimeEmbedding::operator()(const UNetConfig& c, const std::vector<double>& timesteps,
                                 int64_t batch, Device device, const UNetAddedConditions* added,
                                 const char* model) const {
  if (timesteps.size() != 1 && static_cast<int64_t>(timesteps.size()) != batch)
    throw ShapeError(std::string(model) + ": " + std::to_string(timesteps.size()) +
                     " timesteps for a batch of " + std::to_string(batch));
  // diffusers broadcasts one timestep to the whole batch.
  const std::vector<double> t = timesteps.size() == 1
                                    ? std::vector<double>(static_cast<size_t>(batch), timesteps[0])
                                    : timesteps;
  Tensor temb = linear_1(
      timestep_embedding(t, c.block_out_channels[0], c.flip_sin_to_cos, c.freq_shift).on(device));
  ops::silu_(temb);
  temb = linear_2(temb);
  if (c.text_time_embedding) {
    ops::add_(temb, text_time_embedding(c, *this, added, batch, model));
  } else if (added) {
    throw ShapeError(std::string(model) +
                     ": added conditions given, but the config has no addition_embed_type");
  }
  ops::silu_(temb);
  return temb;
}

}  // namespace diffuse::unet
