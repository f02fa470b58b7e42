// Building blocks with weights, named as in diffusers/transformers so a module loads from
// `<prefix>.weight` / `<prefix>.bias` exactly as the checkpoint spells them.
#pragma once

#include <string>

#include "backend/ops.h"
#include "io/weight_store.h"

namespace diffuse::nn {

/// "a" + "b" -> "a.b" (empty prefix allowed).
std::string join(const std::string& prefix, const std::string& name);

struct Linear {
  Weight weight;  // [out, in], held at the store's precision (WeightStore::get_weight)
  Tensor bias;    // [out] (may be undefined)
  static Linear load(const WeightStore& w, const std::string& prefix, int64_t in, int64_t out,
                     bool has_bias = true);
  Tensor operator()(const Tensor& x) const {
    return ops::linear(x, weight, bias.defined() ? &bias : nullptr);
  }
};

struct Conv2d {
  Weight weight;  // [out, in, k, k], held at the store's precision
  Tensor bias;    // [out]
  ops::Conv2dParams params;
  static Conv2d load(const WeightStore& w, const std::string& prefix, int64_t in, int64_t out,
                     int k, ops::Conv2dParams params);
  Tensor operator()(const Tensor& x) const { return ops::conv2d(x, weight, &bias, params); }
};

struct LayerNorm {
  Tensor weight, bias;
  float eps = 1e-5f;
  static LayerNorm load(const WeightStore& w, const std::string& prefix, int64_t dim, float eps);
  Tensor operator()(const Tensor& x) const { return ops::layer_norm(x, weight, bias, eps); }
};

struct GroupNorm {
  Tensor weight, bias;
  int groups = 32;
  float eps = 1e-5f;
  static GroupNorm load(const WeightStore& w, const std::string& prefix, int64_t channels,
                        int groups, float eps);
  Tensor operator()(const Tensor& x, bool fuse_silu = false) const {
    return ops::group_norm(x, groups, weight, bias, eps, fuse_silu);
  }
};

}  // namespace diffuse::nn
