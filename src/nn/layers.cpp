#include "nn/layers.h"

namespace diffuse::nn {

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

Linear Linear::load(const WeightStore& w, const std::string& prefix, int64_t in, int64_t out,
                    bool has_bias) {
  Linear l;
  l.weight = w.get_weight(join(prefix, "weight"), {out, in});
  if (has_bias) l.bias = w.get(join(prefix, "bias"), {out});
  return l;
}

Conv2d Conv2d::load(const WeightStore& w, const std::string& prefix, int64_t in, int64_t out, int k,
                    ops::Conv2dParams params) {
  Conv2d c;
  c.weight = w.get_weight(join(prefix, "weight"), {out, in, k, k});
  c.bias = w.get(join(prefix, "bias"), {out});
  c.params = params;
  return c;
}

LayerNorm LayerNorm::load(const WeightStore& w, const std::string& prefix, int64_t dim, float eps) {
  return {w.get(join(prefix, "weight"), {dim}), w.get(join(prefix, "bias"), {dim}), eps};
}

GroupNorm GroupNorm::load(const WeightStore& w, const std::string& prefix, int64_t channels,
                          int groups, float eps) {
  return {w.get(join(prefix, "weight"), {channels}), w.get(join(prefix, "bias"), {channels}),
          groups, eps};
}

}  // namespace diffuse::nn
