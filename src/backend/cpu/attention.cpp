// Multi-head attention, blocked over query rows: each task computes the scores of up to kBlock
// queries against all keys for one (batch, head), so a 4096x4096 attention never holds more than
// one score block per thread. Heads are addressed through GEMM leading dimensions, so no
// head-splitting transposes are needed.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/vector_kernels.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "diffuse/error.hpp"

namespace diffuse::cpu {

namespace {
constexpr int64_t kBlock = 256;

/// attention() with WeightCompute::BF16: q, k, v and the softmax probabilities rounded to bf16,
/// the same blocks and split as the float32 path.
Tensor attention_bf16(const Tensor& q32, const Tensor& k32, const Tensor& v32, int heads,
                      bool causal) {
  const int64_t B = q32.dim(0), Lq = q32.dim(1), C = q32.dim(2), Lk = k32.dim(1), D = C / heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const Tensor q = rounded_to_bf16(q32), k = rounded_to_bf16(k32), v = rounded_to_bf16(v32);
  Tensor out = Tensor::empty({B, Lq, C});
  const int64_t blocks = (Lq + kBlock - 1) / kBlock;
  const int64_t tasks = B * heads * blocks;
  const int64_t workers = std::min<int64_t>(num_threads(), tasks);
  std::vector<Tensor> scores, probabilities;
  for (int64_t i = 0; i < workers; ++i) {
    scores.push_back(Tensor::empty({std::min(kBlock, Lq), Lk}));
    probabilities.push_back(Tensor::empty({std::min(kBlock, Lq), Lk}, DType::BF16));
  }
  const VectorKernels& vk = vector_kernels();
  parallel_for(workers, [&](int64_t w0, int64_t w1) {
    for (int64_t wi = w0; wi < w1; ++wi) {
      float* s = scores[static_cast<size_t>(wi)].f32();
      auto* p = probabilities[static_cast<size_t>(wi)].data_as<uint16_t>();
      for (int64_t t = tasks * wi / workers; t < tasks * (wi + 1) / workers; ++t) {
        const int64_t b = t / (heads * blocks), h = (t / blocks) % heads, blk = t % blocks;
        const int64_t r0 = blk * kBlock, rows = std::min(kBlock, Lq - r0);
        const uint16_t* qp = q.data_as<uint16_t>() + (b * Lq + r0) * C + h * D;
        const uint16_t* kp = k.data_as<uint16_t>() + b * Lk * C + h * D;
        const uint16_t* vp = v.data_as<uint16_t>() + b * Lk * C + h * D;
        gemm_bf16(rows, Lk, D, qp, C, kp, C, true, false, s, Lk, scale);
        for (int64_t r = 0; r < rows; ++r)
          vk.softmax_row(s + r * Lk, causal ? std::min(Lk, r0 + r + 1) : Lk, Lk);
        floats_to_bf16(s, rows * Lk, p);
        gemm_bf16(rows, D, Lk, p, Lk, vp, C, false, false, out.f32() + (b * Lq + r0) * C + h * D,
                  C);
      }
    }
  });
  return out;
}

}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal,
                 WeightCompute compute) {
  require_f32_contiguous(q, "attention q");
  require_f32_contiguous(k, "attention k");
  require_f32_contiguous(v, "attention v");
  const int64_t B = q.dim(0), Lq = q.dim(1), C = q.dim(2), Lk = k.dim(1);
  if (k.dim(0) != B || v.dim(0) != B || k.dim(2) != C || v.dim(2) != C || v.dim(1) != Lk ||
      heads <= 0 || C % heads != 0)
    throw ShapeError("attention: q " + q.shape().str() + ", k " + k.shape().str() + ", v " +
                     v.shape().str() + " with " + std::to_string(heads) + " heads");
  const int64_t D = C / heads;
  if (compute == WeightCompute::BF16) return attention_bf16(q, k, v, heads, causal);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  Tensor out = Tensor::empty({B, Lq, C});
  const int64_t blocks = (Lq + kBlock - 1) / kBlock;
  const int64_t tasks = B * heads * blocks;
  // One score buffer per worker, allocated here rather than inside the workers so that the
  // pool sees the same allocation sequence every step, whatever the thread timing.
  const int64_t workers = std::min<int64_t>(num_threads(), tasks);
  std::vector<Tensor> scratch;
  for (int64_t i = 0; i < workers; ++i)
    scratch.push_back(Tensor::empty({std::min(kBlock, Lq), Lk}));
  const VectorKernels& vk = vector_kernels();
  parallel_for(workers, [&](int64_t w0, int64_t w1) {
    for (int64_t wi = w0; wi < w1; ++wi) {
      Tensor& scores = scratch[static_cast<size_t>(wi)];
      for (int64_t t = tasks * wi / workers; t < tasks * (wi + 1) / workers; ++t) {
        const int64_t b = t / (heads * blocks), h = (t / blocks) % heads, blk = t % blocks;
        const int64_t r0 = blk * kBlock, rows = std::min(kBlock, Lq - r0);
        const float* qp = q.f32() + (b * Lq + r0) * C + h * D;
        const float* kp = k.f32() + b * Lk * C + h * D;
        const float* vp = v.f32() + b * Lk * C + h * D;
        float* s = scores.f32();
        gemm(false, true, rows, Lk, D, scale, qp, C, kp, C, 0.f, s, Lk);
        for (int64_t r = 0; r < rows; ++r)
          vk.softmax_row(s + r * Lk, causal ? std::min(Lk, r0 + r + 1) : Lk, Lk);
        gemm(false, false, rows, D, Lk, 1.f, s, Lk, vp, C, 0.f,
             out.f32() + (b * Lq + r0) * C + h * D, C);
      }
    }
  });
  return out;
}

}  // namespace diffuse::cpu
