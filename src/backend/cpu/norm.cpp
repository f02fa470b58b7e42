// Layer norm and group norm. Statistics are accumulated in double: over 4096-pixel groups the
// float32 two-pass sum would drift from PyTorch by more than our 1e-4 budget allows.
#include <cmath>

#include "backend/cpu/kernels.h"
#include "backend/cpu/vector_kernels.h"
#include "core/thread_pool.h"
#include "diffuse/error.hpp"

namespace diffuse::cpu {

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  require_f32_contiguous(x, "layer_norm input");
  const int64_t d = x.dim(-1), rows = x.numel() / d;
  require_shape(gamma, {d}, "layer_norm weight");
  require_shape(beta, {d}, "layer_norm bias");
  Tensor out = Tensor::empty(x.shape());
  const float *xp = x.f32(), *g = gamma.f32(), *bt = beta.f32();
  float* op = out.f32();
  const VectorKernels& vk = vector_kernels();
  parallel_for(
      rows,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const float* row = xp + r * d;
          const double mean = vk.sum(row, d) / double(d);
          const float inv =
              static_cast<float>(1.0 / std::sqrt(vk.sum_sq_dev(row, d, mean) / double(d) + eps));
          vk.normalize(row, op + r * d, d, static_cast<float>(mean), inv, g, bt);
        }
      },
      4);
  return out;
}

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps,
                  bool fuse_silu) {
  require_f32_contiguous(x, "group_norm input");
  const int64_t B = x.dim(0), C = x.dim(1), spatial = x.numel() / (B * C);
  if (groups <= 0 || C % groups != 0)
    throw ShapeError("group_norm: " + std::to_string(C) + " channels not divisible into " +
                     std::to_string(groups) + " groups");
  require_shape(gamma, {C}, "group_norm weight");
  require_shape(beta, {C}, "group_norm bias");
  Tensor out = Tensor::empty(x.shape());
  const int64_t cpg = C / groups, n = cpg * spatial;
  const float *xp = x.f32(), *g = gamma.f32(), *bt = beta.f32();
  float* op = out.f32();
  const VectorKernels& vk = vector_kernels();
  parallel_for(B * groups, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t b = p / groups, gi = p % groups;
      const float* src = xp + (b * C + gi * cpg) * spatial;
      const double mean = vk.sum(src, n) / double(n);
      const double inv = 1.0 / std::sqrt(vk.sum_sq_dev(src, n, mean) / double(n) + eps);
      for (int64_t c = 0; c < cpg; ++c) {
        const int64_t ch = gi * cpg + c;
        // y = (x - mean) * inv * gamma + beta  ==  x * a + b
        const float a = static_cast<float>(inv * g[ch]);
        const float bb = static_cast<float>(bt[ch] - mean * inv * g[ch]);
        vk.affine(src + c * spatial, op + (b * C + ch) * spatial, spatial, a, bb, fuse_silu);
      }
    }
  });
  return out;
}

}  // namespace diffuse::cpu
