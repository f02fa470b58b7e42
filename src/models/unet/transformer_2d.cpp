#include "models/unet/transformer_2d.h"

namespace diffuse::unet {

namespace {
// diffusers: BasicTransformerBlock norm_eps default; Transformer2DModel's input GroupNorm eps.
constexpr float kLayerNormEps = 1e-5f;
constexpr float kGroupNormEps = 1e-6f;
constexpr int64_t kFeedForwardMult = 4;
}  // namespace

BasicTransformerBlock BasicTransformerBlock::load(const WeightStore& w, const std::string& prefix,
                                                  int64_t dim, int heads, int64_t head_dim,
                                                  int64_t context_dim) {
  using nn::join;
  const int64_t ff_inner = kFeedForwardMult * dim;
  BasicTransformerBlock b;
  b.norm1 = nn::LayerNorm::load(w, join(prefix, "norm1"), dim, kLayerNormEps);
  b.attn1 = Attention::load(w, join(prefix, "attn1"), dim, dim, heads, head_dim, false);
  b.norm2 = nn::LayerNorm::load(w, join(prefix, "norm2"), dim, kLayerNormEps);
  b.attn2 = Attention::load(w, join(prefix, "attn2"), dim, context_dim, heads, head_dim, false);
  b.norm3 = nn::LayerNorm::load(w, join(prefix, "norm3"), dim, kLayerNormEps);
  b.ff_proj = nn::Linear::load(w, join(prefix, "ff.net.0.proj"), dim, 2 * ff_inner);
  b.ff_out = nn::Linear::load(w, join(prefix, "ff.net.2"), ff_inner, dim);
  return b;
}

void BasicTransformerBlock::forward_(Tensor& x, const Tensor& context) const {
  {
    const Tensor n = norm1(x);
    ops::add_(x, attn1(n, n));
  }
  ops::add_(x, attn2(norm2(x), context));
  // Statement by statement, so each wide feed-forward activation is released before the next.
  Tensor h = ff_proj(norm3(x));
  Tensor g = ops::geglu(h);
  h = Tensor();
  ops::add_(x, ff_out(g));
}

Transformer2DModel Transformer2DModel::load(const WeightStore& w, const std::string& prefix,
                                            const Params& p) {
  using nn::join;
  const int64_t inner = p.heads * p.head_dim;
  Transformer2DModel t;
  t.norm = nn::GroupNorm::load(w, join(prefix, "norm"), p.channels, p.groups, kGroupNormEps);
  t.proj_in = load_projection(w, join(prefix, "proj_in"), p.channels, inner, !p.linear_projection);
  for (int i = 0; i < p.layers; ++i)
    t.blocks.push_back(
        BasicTransformerBlock::load(w, join(prefix, "transformer_blocks." + std::to_string(i)),
                                    inner, p.heads, p.head_dim, p.context_dim));
  t.proj_out =
      load_projection(w, join(prefix, "proj_out"), inner, p.channels, !p.linear_projection);
  return t;
}

Tensor Transformer2DModel::operator()(const Tensor& x, const Tensor& context) const {
  const int64_t h = x.dim(2), wd = x.dim(3);
  Tensor t = proj_in(ops::nchw_to_nlc(norm(x)));
  for (const auto& b : blocks) b.forward_(t, context);
  t = proj_out(t);
  Tensor out = ops::nlc_to_nchw(t, h, wd);
  t = Tensor();
  ops::add_(out, x);
  return out;
}

}  // namespace diffuse::unet
