#include "models/unet/attention.h"

namespace diffuse::unet {

nn::Linear load_projection(const WeightStore& w, const std::string& prefix, int64_t in, int64_t out,
                           bool as_conv, bool has_bias) {
  if (!as_conv) return nn::Linear::load(w, prefix, in, out, has_bias);
  nn::Linear l;
  // A contiguous [out, in, 1, 1] view reshapes to [out, in] without copying.
  l.weight = w.get_weight(nn::join(prefix, "weight"), {out, in, 1, 1}).reshape({out, in});
  if (has_bias) l.bias = w.get(nn::join(prefix, "bias"), {out});
  return l;
}

Attention Attention::load(const WeightStore& w, const std::string& prefix, int64_t query_dim,
                          int64_t context_dim, int heads, int64_t head_dim, bool qkv_bias) {
  using nn::join;
  const int64_t inner = heads * head_dim;
  Attention a;
  a.to_q = nn::Linear::load(w, join(prefix, "to_q"), query_dim, inner, qkv_bias);
  a.to_k = nn::Linear::load(w, join(prefix, "to_k"), context_dim, inner, qkv_bias);
  a.to_v = nn::Linear::load(w, join(prefix, "to_v"), context_dim, inner, qkv_bias);
  a.to_out = nn::Linear::load(w, join(prefix, "to_out.0"), inner, query_dim);
  a.heads = heads;
  a.kernel = w.attention_kernel();
  return a;
}

Tensor Attention::operator()(const Tensor& x, const Tensor& context) const {
  Tensor o = ops::attention(to_q(x), to_k(context), to_v(context), heads, /*causal=*/false,
                            to_q.weight.compute, kernel);
  return to_out(o);
}

}  // namespace diffuse::unet
