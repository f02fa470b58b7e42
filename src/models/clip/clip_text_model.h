// CLIP text encoder (transformers' CLIPTextModel): SD 1.x uses OpenAI CLIP ViT-L/14 (quick_gelu),
// SD 2.x OpenCLIP ViT-H/14 (gelu) stored in the same layout. With a projection it is
// CLIPTextModelWithProjection, SDXL's second encoder (OpenCLIP ViT-bigG/14): the pooled output
// through text_projection (a Linear without bias).
#pragma once

#include <string>
#include <vector>

#include "io/weight_store.h"
#include "nn/layers.h"

namespace diffuse {

struct ClipTextConfig {
  int hidden_size = 768;
  int intermediate_size = 3072;
  int num_attention_heads = 12;
  int num_hidden_layers = 12;
  int max_position_embeddings = 77;
  int vocab_size = 49408;
  float layer_norm_eps = 1e-5f;
  std::string hidden_act = "quick_gelu";  // or "gelu"
  int eos_token_id = 2;
  int projection_dim = 768;

  /// Parses a transformers CLIPTextConfig (config.json); unknown keys are a ConfigError.
  static ClipTextConfig load(const std::string& path);
};

struct ClipTextOutput {
  Tensor last_hidden_state;           // [B, L, H], after the final layer norm
  std::vector<Tensor> hidden_states;  // embeddings, then each layer's output (empty unless asked)
  Tensor pooler_output;               // [B, H], the EOS token's final state
  Tensor text_embeds;  // [B, projection_dim]: text_projection(pooler_output), with projection only
};

class ClipTextModel {
 public:
  /// Loads `dir/config.json` and the weights beside it; `with_projection` loads
  /// CLIPTextModelWithProjection (its `text_projection.weight` too).
  static ClipTextModel load(const std::string& dir, bool with_projection = false);
  /// Builds from a config and weights named as transformers names them (`text_model.` prefix;
  /// `text_projection` at the top level).
  static ClipTextModel from_weights(const ClipTextConfig& config, const WeightStore& weights,
                                    bool with_projection = false);

  const ClipTextConfig& config() const { return config_; }
  bool has_projection() const { return text_projection_.weight.defined(); }

  /// input_ids: I64 [B, L] with L <= max_position_embeddings.
  ClipTextOutput forward(const Tensor& input_ids, bool output_hidden_states = false) const;

  /// The conditioning a pipeline uses: the last hidden state, or with clip_skip = N > 0 the output
  /// of layer (num_layers - N) passed through the final layer norm (diffusers' clip_skip).
  Tensor encode(const Tensor& input_ids, int clip_skip = 0) const;

  /// hidden_states[-k] of forward(output_hidden_states=True), without computing the layers after
  /// it and without the final layer norm: k = 1 is the last layer's output, k = num_layers + 1 the
  /// embeddings. SDXL conditions on k = clip_skip + 2. ConfigError when k is out of range.
  Tensor hidden_state_from_end(const Tensor& input_ids, int k) const;

 private:
  struct Layer {
    nn::LayerNorm norm1, norm2;
    nn::Linear q, k, v, out, fc1, fc2;
  };
  /// Runs the embeddings and the first `layers` encoder layers.
  Tensor run(const Tensor& input_ids, int layers, std::vector<Tensor>* hidden_states) const;

  ClipTextConfig config_;
  AttentionKernel attention_kernel_ = AttentionKernel::Sliced;
  Tensor token_embedding_, position_embedding_;
  std::vector<Layer> layers_;
  nn::LayerNorm final_norm_;
  nn::Linear text_projection_;  // undefined without projection
};

}  // namespace diffuse
