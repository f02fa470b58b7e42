// diffusers' Attention module as Stable Diffusion uses it: q from the query sequence, k/v from the
// context (the query sequence itself for self-attention), multi-head scaled dot-product attention,
// then the output projection `to_out.0`. Inputs and outputs are [B, L, C] token sequences.
#pragma once

#include <string>

#include "nn/layers.h"

namespace diffuse::unet {

/// A projection stored either as a Linear [out, in] or as a 1x1 Conv2d [out, in, 1, 1] (both are
/// the same matrix acting on channels); loaded as a Linear for the [B, L, C] layout. `as_conv`
/// picks the stored shape, so a wrong one is a FileError naming the key and the expected shape.
nn::Linear load_projection(const WeightStore& w, const std::string& prefix, int64_t in, int64_t out,
                           bool as_conv, bool has_bias = true);

struct Attention {
  nn::Linear to_q, to_k, to_v, to_out;
  int heads = 1;
  AttentionKernel kernel = AttentionKernel::Sliced;  // the store's attention_kernel()

  /// Loads `<prefix>.to_q/.to_k/.to_v/.to_out.0`; q/k/v carry a bias only when `qkv_bias`
  /// (the UNet's transformer blocks have none, the VAE's attention has them).
  static Attention load(const WeightStore& w, const std::string& prefix, int64_t query_dim,
                        int64_t context_dim, int heads, int64_t head_dim, bool qkv_bias);

  /// x [B,Lq,query_dim], context [B,Lk,context_dim] (x itself for self-attention).
  Tensor operator()(const Tensor& x, const Tensor& context) const;
};

}  // namespace diffuse::unet
