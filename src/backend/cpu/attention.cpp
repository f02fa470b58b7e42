// Multi-head attention in three algorithms (AttentionKernel), float32 or bfloat16 products:
//
// - Sliced (default): each task computes the scores of up to 256 queries against all keys for one
//   (batch, head), so a 4096x4096 attention never holds more than one score block per thread.
// - Standard: the same with one task per (batch, head): its whole score matrix at once.
// - Flash: each task takes up to 128 queries through the keys 512 at a time, keeping a running
//   maximum and sum per query (the online softmax) and rescaling the partial output when the
//   maximum grows, so no task ever holds a whole row of scores.
//
// Heads are addressed through GEMM leading dimensions, so no head-splitting transposes are
// needed. Tasks depend on the shapes only, never on the thread count, so every kernel gives the
// same bits at any --threads.
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

constexpr int64_t kSlicedQueryRows = 256;
constexpr int64_t kFlashQueryRows = 128, kFlashKeys = 512;

/// q, k and v of one attention call, float32 or rounded to bf16 (WeightCompute::BF16), with the
/// two products every algorithm is made of, on one (batch, head)'s rows and keys.
class Operands {
 public:
  Operands(const Tensor& q, const Tensor& k, const Tensor& v, int heads, WeightCompute compute)
      : bf16_(compute == WeightCompute::BF16),
        q_(bf16_ ? rounded_to_bf16(q) : q),
        k_(bf16_ ? rounded_to_bf16(k) : k),
        v_(bf16_ ? rounded_to_bf16(v) : v),
        Lq_(q.dim(1)),
        Lk_(k.dim(1)),
        C_(q.dim(2)),
        D_(C_ / heads),
        scale_(1.0f / std::sqrt(static_cast<float>(D_))) {}

  bool bf16() const { return bf16_; }
  int64_t head_size() const { return D_; }

  /// s[r, j] = scale * q[b, r0 + r, head h] . k[b, c0 + j, head h]; s has row stride lds.
  void scores(int64_t b, int64_t h, int64_t r0, int64_t rows, int64_t c0, int64_t cols, float* s,
              int64_t lds) const {
    const int64_t qo = (b * Lq_ + r0) * C_ + h * D_, ko = (b * Lk_ + c0) * C_ + h * D_;
    if (bf16_)
      gemm_bf16(rows, cols, D_, q_.data_as<uint16_t>() + qo, C_, k_.data_as<uint16_t>() + ko, C_,
                true, false, s, lds, scale_);
    else
      gemm(false, true, rows, cols, D_, scale_, q_.f32() + qo, C_, k_.f32() + ko, C_, 0.f, s, lds);
  }

  /// o[r, :] (+)= sum_j p[r, j] v[b, c0 + j, head h], o with row stride ldo. In bf16 the
  /// probabilities are rounded to bf16 into p16 (room for rows x ldp) first.
  void weighted_sum(int64_t b, int64_t h, int64_t rows, int64_t c0, int64_t cols, const float* p,
                    int64_t ldp, uint16_t* p16, bool accumulate, float* o, int64_t ldo) const {
    const int64_t vo = (b * Lk_ + c0) * C_ + h * D_;
    if (bf16_) {
      floats_to_bf16(p, rows * ldp, p16);
      gemm_bf16(rows, D_, cols, p16, ldp, v_.data_as<uint16_t>() + vo, C_, false, accumulate, o,
                ldo);
    } else {
      gemm(false, false, rows, D_, cols, 1.f, p, ldp, v_.f32() + vo, C_, accumulate ? 1.f : 0.f, o,
           ldo);
    }
  }

 private:
  bool bf16_;
  Tensor q_, k_, v_;
  int64_t Lq_, Lk_, C_, D_;
  float scale_;
};

/// Per-worker buffers, allocated before the workers start so that the activation pool sees the
/// same allocation sequence every step, whatever the thread timing.
struct Scratch {
  Tensor scores, probabilities16;  // [rows, cols] float32; the same in bf16 when computing in bf16
};
std::vector<Scratch> make_scratch(int64_t workers, int64_t rows, int64_t cols, bool bf16) {
  std::vector<Scratch> s(static_cast<size_t>(workers));
  for (Scratch& w : s) {
    w.scores = Tensor::empty({rows, cols});
    if (bf16) w.probabilities16 = Tensor::empty({rows, cols}, DType::BF16);
  }
  return s;
}

/// One task: query rows [r0, r0 + rows) of head h of batch item b.
struct QueryBlock {
  int64_t b, h, r0, rows;
};

/// Runs fn(scratch, block) for every block of `block_rows` queries of every (batch, head) of
/// `out` [B, Lq, C]; each worker has its own scratch of [min(block_rows, Lq), scratch_cols] and a
/// contiguous range of blocks.
template <typename Fn>
void for_each_query_block(const Tensor& out, int heads, int64_t block_rows, int64_t scratch_cols,
                          bool bf16, const Fn& fn) {
  const int64_t B = out.dim(0), Lq = out.dim(1);
  const int64_t blocks = (Lq + block_rows - 1) / block_rows, tasks = B * heads * blocks;
  const int64_t workers = std::min<int64_t>(num_threads(), tasks);
  std::vector<Scratch> scratch =
      make_scratch(workers, std::min(block_rows, Lq), scratch_cols, bf16);
  parallel_for(workers, [&](int64_t w0, int64_t w1) {
    for (int64_t wi = w0; wi < w1; ++wi)
      for (int64_t t = tasks * wi / workers; t < tasks * (wi + 1) / workers; ++t) {
        const int64_t r0 = t % blocks * block_rows;
        fn(scratch[static_cast<size_t>(wi)],
           QueryBlock{t / (heads * blocks), t / blocks % heads, r0, std::min(block_rows, Lq - r0)});
      }
  });
}

/// o[r, :D] /= sums[r] for each of `rows` rows of stride ldo: the softmax's division, done on a
/// row's D outputs instead of its probabilities. A zero sum (no key visible) leaves zeros.
void divide_rows_by_sums(float* o, int64_t ldo, int64_t D, const double* sums, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) {
    const float inv = sums[r] > 0 ? static_cast<float>(1.0 / sums[r]) : 0.f;
    for (int64_t d = 0; d < D; ++d) o[r * ldo + d] *= inv;
  }
}

/// Sliced and Standard: tasks of `block` query rows against every key. In float32 each row's
/// scores become exp(score - row max), which weigh the values, and the weighted sum (D values a
/// row) is then divided by the row's sum instead of every probability (Lk of them). In bf16 the
/// probabilities themselves are rounded to bf16 (as the reference backend does), so they are
/// normalised first.
void attention_by_rows(const Operands& ops, Tensor& out, int heads, bool causal, int64_t block,
                       int64_t Lk) {
  const int64_t Lq = out.dim(1), C = out.dim(2), D = ops.head_size();
  const VectorKernels& vk = vector_kernels();
  for_each_query_block(out, heads, block, Lk, ops.bf16(), [&](Scratch& w, const QueryBlock& q) {
    const auto [b, h, r0, rows] = q;
    float* s = w.scores.f32();
    ops.scores(b, h, r0, rows, 0, Lk, s, Lk);
    const bool normalise_after = !ops.bf16();
    std::vector<double> sums(normalise_after ? static_cast<size_t>(rows) : 0);
    for (int64_t r = 0; r < rows; ++r) {
      float* row = s + r * Lk;
      const int64_t valid = causal ? std::min(Lk, r0 + r + 1) : Lk;
      if (!normalise_after) {
        vk.softmax_row(row, valid, Lk);
        continue;
      }
      sums[static_cast<size_t>(r)] =
          valid > 0 ? vk.exp_shifted(row, valid, Lk, vk.max(row, valid)) : 0.0;
    }
    uint16_t* p16 = ops.bf16() ? w.probabilities16.data_as<uint16_t>() : nullptr;
    float* o = out.f32() + (b * Lq + r0) * C + h * D;
    ops.weighted_sum(b, h, rows, 0, Lk, s, Lk, p16, false, o, C);
    if (normalise_after) divide_rows_by_sums(o, C, D, sums.data(), rows);
  });
}

/// Flash: tasks of kFlashQueryRows queries through the keys kFlashKeys at a time. The output rows
/// accumulate unnormalised, rescaled by exp(old max - new max) whenever a row's maximum grows,
/// and are divided by the row's sum at the end.
void attention_online_softmax(const Operands& ops, Tensor& out, int heads, bool causal,
                              int64_t Lk) {
  const int64_t Lq = out.dim(1), C = out.dim(2), D = ops.head_size();
  const VectorKernels& vk = vector_kernels();
  const int64_t keys_max = std::min(kFlashKeys, Lk);
  for_each_query_block(
      out, heads, kFlashQueryRows, keys_max, ops.bf16(), [&](Scratch& w, const QueryBlock& q) {
        const auto [b, h, r0, rows] = q;
        float* s = w.scores.f32();
        uint16_t* p16 = ops.bf16() ? w.probabilities16.data_as<uint16_t>() : nullptr;
        float* o = out.f32() + (b * Lq + r0) * C + h * D;
        float running_max[kFlashQueryRows];
        double running_sum[kFlashQueryRows];
        std::fill_n(running_max, rows, -INFINITY);
        std::fill_n(running_sum, rows, 0.0);
        // A causal task needs only the keys up to its last query.
        const int64_t key_end = causal ? std::min(Lk, r0 + rows) : Lk;
        for (int64_t c0 = 0; c0 < key_end; c0 += kFlashKeys) {
          const int64_t cols = std::min(kFlashKeys, key_end - c0);
          ops.scores(b, h, r0, rows, c0, cols, s, cols);
          for (int64_t r = 0; r < rows; ++r) {
            float* row = s + r * cols;
            const int64_t valid = causal ? std::clamp<int64_t>(r0 + r + 1 - c0, 0, cols) : cols;
            const float block_max = valid > 0 ? vk.max(row, valid) : -INFINITY;
            const float new_max = std::max(running_max[r], block_max);
            if (new_max == -INFINITY) {  // nothing visible to this query yet
              std::fill_n(row, cols, 0.f);
              continue;
            }
            const double block_sum = vk.exp_shifted(row, valid, cols, new_max);
            if (c0 > 0 && new_max != running_max[r]) {
              const float rescale = std::exp(running_max[r] - new_max);
              for (int64_t d = 0; d < D; ++d) o[r * C + d] *= rescale;
              running_sum[r] *= rescale;
            }
            running_sum[r] += block_sum;
            running_max[r] = new_max;
          }
          ops.weighted_sum(b, h, rows, c0, cols, s, cols, p16, c0 > 0, o, C);
        }
        divide_rows_by_sums(o, C, D, running_sum, rows);
      });
}

}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal,
                 WeightCompute compute, AttentionKernel kernel) {
  require_f32_contiguous(q, "attention q");
  require_f32_contiguous(k, "attention k");
  require_f32_contiguous(v, "attention v");
  const int64_t B = q.dim(0), Lq = q.dim(1), C = q.dim(2), Lk = k.dim(1);
  if (k.dim(0) != B || v.dim(0) != B || k.dim(2) != C || v.dim(2) != C || v.dim(1) != Lk ||
      heads <= 0 || C % heads != 0)
    throw ShapeError("attention: q " + q.shape().str() + ", k " + k.shape().str() + ", v " +
                     v.shape().str() + " with " + std::to_string(heads) + " heads");
  const Operands operands(q, k, v, heads, compute);
  Tensor out = Tensor::empty({B, Lq, C});
  switch (kernel) {
    case AttentionKernel::Sliced:
      attention_by_rows(operands, out, heads, causal, kSlicedQueryRows, Lk);
      break;
    case AttentionKernel::Standard:
      attention_by_rows(operands, out, heads, causal, std::max<int64_t>(Lq, 1), Lk);
      break;
    case AttentionKernel::Flash:
      attention_online_softmax(operands, out, heads, causal, Lk);
      break;
  }
  return out;
}

}  // namespace diffuse::cpu
