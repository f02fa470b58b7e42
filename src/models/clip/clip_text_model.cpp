#include "models/clip/clip_text_model.h"

#include <cstring>
#include <filesystem>

#include "diffuse/error.hpp"
#include "io/json_config.h"

namespace diffuse {

ClipTextConfig ClipTextConfig::load(const std::string& path) {
  JsonConfig j = JsonConfig::load(path);
  ClipTextConfig c;
  c.hidden_size = j.integer("hidden_size", c.hidden_size);
  c.intermediate_size = j.integer("intermediate_size", c.intermediate_size);
  c.num_attention_heads = j.integer("num_attention_heads", c.num_attention_heads);
  c.num_hidden_layers = j.integer("num_hidden_layers", c.num_hidden_layers);
  c.max_position_embeddings = j.integer("max_position_embeddings", c.max_position_embeddings);
  c.vocab_size = j.integer("vocab_size", c.vocab_size);
  c.layer_norm_eps = static_cast<float>(j.number("layer_norm_eps", c.layer_norm_eps));
  c.hidden_act = j.choice("hidden_act", c.hidden_act, {"quick_gelu", "gelu"});
  c.eos_token_id = j.integer("eos_token_id", c.eos_token_id);
  c.projection_dim = j.integer("projection_dim", c.projection_dim);
  j.expect("model_type", "clip_text_model");
  j.ignore({"architectures", "attention_dropout", "dropout", "bos_token_id", "pad_token_id",
            "initializer_factor", "initializer_range", "torch_dtype", "dtype",
            "transformers_version", "output_hidden_states", "use_return_dict", "return_dict"});
  j.finish();
  if (c.hidden_size <= 0 || c.num_attention_heads <= 0 ||
      c.hidden_size % c.num_attention_heads != 0)
    j.fail("num_attention_heads", "must divide hidden_size " + std::to_string(c.hidden_size));
  if (c.num_hidden_layers <= 0 || c.num_hidden_layers > 1000)
    j.fail("num_hidden_layers", "out of range");
  return c;
}

ClipTextModel ClipTextModel::load(const std::string& dir, bool with_projection) {
  const auto config = ClipTextConfig::load((std::filesystem::path(dir) / "config.json").string());
  return from_weights(config, load_component_weights(dir), with_projection);
}

ClipTextModel ClipTextModel::from_weights(const ClipTextConfig& c, const WeightStore& w,
                                          bool with_projection) {
  ClipTextModel m;
  m.config_ = c;
  m.attention_kernel_ = w.attention_kernel();
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  const std::string p = "text_model.";
  // As stored: a 16-bit table stays 16-bit (and mapped), since a prompt reads only 77 rows of it.
  m.token_embedding_ = w.get_as_stored(p + "embeddings.token_embedding.weight", {c.vocab_size, H});
  m.position_embedding_ =
      w.get(p + "embeddings.position_embedding.weight", {c.max_position_embeddings, H});
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string l = p + "encoder.layers." + std::to_string(i) + ".";
    Layer layer;
    layer.norm1 = nn::LayerNorm::load(w, l + "layer_norm1", H, c.layer_norm_eps);
    layer.norm2 = nn::LayerNorm::load(w, l + "layer_norm2", H, c.layer_norm_eps);
    layer.q = nn::Linear::load(w, l + "self_attn.q_proj", H, H);
    layer.k = nn::Linear::load(w, l + "self_attn.k_proj", H, H);
    layer.v = nn::Linear::load(w, l + "self_attn.v_proj", H, H);
    layer.out = nn::Linear::load(w, l + "self_attn.out_proj", H, H);
    layer.fc1 = nn::Linear::load(w, l + "mlp.fc1", H, I);
    layer.fc2 = nn::Linear::load(w, l + "mlp.fc2", I, H);
    m.layers_.push_back(std::move(layer));
  }
  m.final_norm_ = nn::LayerNorm::load(w, p + "final_layer_norm", H, c.layer_norm_eps);
  if (with_projection)
    m.text_projection_ =
        nn::Linear::load(w, "text_projection", H, c.projection_dim, /*has_bias=*/false);
  return m;
}

Tensor ClipTextModel::run(const Tensor& ids, int layers, std::vector<Tensor>* hidden_states) const {
  if (ids.dtype() != DType::I64 || ids.ndim() != 2)
    throw ShapeError("text encoder: input_ids must be I64 [batch, length], got " + ids.describe());
  const int64_t L = ids.dim(1);
  if (L > config_.max_position_embeddings)
    throw ShapeError("text encoder: " + std::to_string(L) +
                     " tokens exceed max_position_embeddings " +
                     std::to_string(config_.max_position_embeddings));
  Tensor x = ops::embedding(ids, token_embedding_);
  // position_ids = arange(L): the first L rows of the table, added to every batch item.
  ops::add_broadcast_(x, position_embedding_.narrow(0, 0, L));
  if (hidden_states) hidden_states->push_back(x);
  const bool quick = config_.hidden_act == "quick_gelu";
  for (int i = 0; i < layers; ++i) {
    const Layer& l = layers_[static_cast<size_t>(i)];
    Tensor h = l.norm1(x);
    Tensor a = ops::attention(l.q(h), l.k(h), l.v(h), config_.num_attention_heads, /*causal=*/true,
                              l.q.weight.compute, attention_kernel_);
    Tensor y = ops::add(x, l.out(a));
    h = l.fc1(l.norm2(y));
    if (quick) {
      ops::quick_gelu_(h);
    } else {
      ops::gelu_(h);
    }
    ops::add_(y, l.fc2(h));
    x = std::move(y);
    if (hidden_states) hidden_states->push_back(x);
  }
  return x;
}

ClipTextOutput ClipTextModel::forward(const Tensor& ids, bool output_hidden_states) const {
  ClipTextOutput out;
  Tensor x =
      run(ids, config_.num_hidden_layers, output_hidden_states ? &out.hidden_states : nullptr);
  out.last_hidden_state = final_norm_(x);
  // Pooled output: the EOS position. transformers' legacy rule (eos_token_id == 2 in old configs)
  // takes the highest id, which is EOS in CLIP's vocabulary; otherwise the first EOS.
  const int64_t B = ids.dim(0), L = ids.dim(1);
  // The token ids are small host-side data (the tokenizer's output); the positions go back to the
  // ids' device for the gather.
  const Tensor host_ids = ids.to_host();
  const int64_t* ip = host_ids.data_as<int64_t>();
  Tensor positions = Tensor::empty({B}, DType::I64);
  for (int64_t b = 0; b < B; ++b) {
    int64_t pos = 0;
    for (int64_t t = 0; t < L; ++t) {
      if (config_.eos_token_id == 2) {
        if (ip[b * L + t] > ip[b * L + pos]) pos = t;
      } else if (ip[b * L + t] == config_.eos_token_id) {
        pos = t;
        break;
      }
    }
    positions.data_as<int64_t>()[b] = pos;
  }
  out.pooler_output = ops::select_tokens(out.last_hidden_state, positions.on(ids.device()));
  if (has_projection()) out.text_embeds = text_projection_(out.pooler_output);
  return out;
}

Tensor ClipTextModel::encode(const Tensor& ids, int clip_skip) const {
  if (clip_skip < 0 || clip_skip >= config_.num_hidden_layers)
    throw ConfigError("clip_skip " + std::to_string(clip_skip) + " out of range [0, " +
                      std::to_string(config_.num_hidden_layers - 1) + "]");
  // Layers after the one we condition on are never computed.
  return final_norm_(run(ids, config_.num_hidden_layers - clip_skip, nullptr));
}

Tensor ClipTextModel::hidden_state_from_end(const Tensor& ids, int k) const {
  const int states = config_.num_hidden_layers + 1;  // the embeddings, then each layer's output
  if (k < 1 || k > states)
    throw ConfigError("text encoder: hidden state -" + std::to_string(k) + " out of range [-" +
                      std::to_string(states) + ", -1]");
  return run(ids, states - k, nullptr);
}

}  // namespace diffuse
