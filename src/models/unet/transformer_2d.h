// Transformer2DModel with continuous input (diffusers models/transformers/transformer_2d.py) and
// its BasicTransformerBlock (models/attention.py), as the UNet's cross-attention levels use them:
//   h = proj_in(group_norm(x))  as [B, H*W, inner]
//   per block: h += attn1(norm1(h)); h += attn2(norm2(h), context); h += ff(norm3(h))
//   out = proj_out(h) as [B, C, H, W] + x
// proj_in/proj_out are 1x1 convolutions (SD 1.x) or Linears (use_linear_projection, SD 2.x); both
// are applied as Linears on the token layout, which is the same computation.
#pragma once

#include <string>
#include <vector>

#include "models/unet/attention.h"

namespace diffuse::unet {

struct BasicTransformerBlock {
  nn::LayerNorm norm1, norm2, norm3;
  Attention attn1, attn2;      // self-attention, cross-attention
  nn::Linear ff_proj, ff_out;  // ff.net.0.proj (GEGLU, 2x inner), ff.net.2

  static BasicTransformerBlock load(const WeightStore& w, const std::string& prefix, int64_t dim,
                                    int heads, int64_t head_dim, int64_t context_dim);
  /// x [B,L,dim] updated in place (residual adds); context [B,Lk,context_dim].
  void forward_(Tensor& x, const Tensor& context) const;
};

struct Transformer2DModel {
  nn::GroupNorm norm;
  nn::Linear proj_in, proj_out;
  std::vector<BasicTransformerBlock> blocks;

  struct Params {
    int64_t channels = 0;  // in = out channels
    int heads = 1;
    int64_t head_dim = 0;
    int64_t context_dim = 0;
    int layers = 1;
    int groups = 32;
    bool linear_projection = false;
  };
  static Transformer2DModel load(const WeightStore& w, const std::string& prefix, const Params& p);
  /// x [B,C,H,W], context [B,Lk,context_dim]  ->  [B,C,H,W]
  Tensor operator()(const Tensor& x, const Tensor& context) const;
};

}  // namespace diffuse::unet
