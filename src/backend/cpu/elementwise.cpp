// Element-wise ops, activations, layout changes and embedding lookup.
#include <cmath>
#include <cstring>

#include "backend/cpu/kernels.h"
#include "backend/cpu/vector_kernels.h"
#include "backend/op_checks.h"
#include "core/thread_pool.h"
#include "diffuse/error.hpp"

namespace diffuse::cpu {

namespace {
constexpr int64_t kGrain = 1 << 14;

/// chunk(p, n) over x's values in place, in parallel chunks.
template <typename F>
void in_chunks_(Tensor& x, const char* what, F chunk) {
  require_f32_contiguous(x, what);
  float* p = x.f32();
  parallel_for(
      x.numel(), [&](int64_t b, int64_t e) { chunk(p + b, e - b); }, kGrain);
}

/// v = f(v) for every value of x.
template <typename F>
void map_(Tensor& x, const char* what, F f) {
  in_chunks_(x, what, [&](float* p, int64_t n) {
    for (int64_t i = 0; i < n; ++i) p[i] = f(p[i]);
  });
}

void require_same(const Tensor& a, const Tensor& b, const char* what) {
  require_f32_contiguous(a, what);
  require_f32_contiguous(b, what);
  if (a.shape() != b.shape())
    throw ShapeError(std::string(what) + ": shapes " + a.shape().str() + " and " + b.shape().str());
}
/// p = p * sigmoid(k p) over x, in parallel chunks.
void sigmoid_gate_(Tensor& x, const char* what, float k) {
  const VectorKernels& vk = vector_kernels();
  in_chunks_(x, what, [&](float* p, int64_t n) { vk.sigmoid_gate(p, n, k); });
}

}  // namespace

void silu_(Tensor& x) {
  sigmoid_gate_(x, "silu", 1.f);
}
void gelu_(Tensor& x) {
  const VectorKernels& vk = vector_kernels();
  in_chunks_(x, "gelu", [&](float* p, int64_t n) { vk.gelu(p, p, n); });
}
void quick_gelu_(Tensor& x) {
  sigmoid_gate_(x, "quick_gelu", 1.702f);
}
void scale_(Tensor& x, float s) {
  map_(x, "scale", [s](float v) { return v * s; });
}
void clamp_(Tensor& x, float lo, float hi) {
  // fmin/fmax would turn NaN into a bound; torch.clamp keeps NaN, so compare explicitly.
  map_(x, "clamp", [lo, hi](float v) { return v < lo ? lo : (v > hi ? hi : v); });
}

Tensor geglu(const Tensor& x) {
  require_f32_contiguous(x, "geglu input");
  const int64_t d2 = x.dim(-1), d = d2 / 2, rows = x.numel() / d2;
  if (d2 % 2) throw ShapeError("geglu: odd last dimension in " + x.shape().str());
  Shape s = x.shape();
  s[-1] = d;
  Tensor out = Tensor::empty(s);
  const float* xp = x.f32();
  float* op = out.f32();
  const VectorKernels& vk = vector_kernels();
  parallel_for(
      rows,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) vk.gelu_gate(xp + r * d2, xp + r * d2 + d, op + r * d, d);
      },
      16);
  return out;
}

void softmax_(Tensor& x) {
  require_f32_contiguous(x, "softmax");
  const int64_t d = x.dim(-1), rows = x.numel() / d;
  float* p = x.f32();
  const VectorKernels& vk = vector_kernels();
  parallel_for(
      rows,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) vk.softmax_row(p + r * d, d, d);
      },
      16);
}

void add_(Tensor& a, const Tensor& b) {
  require_same(a, b, "add");
  float* ap = a.f32();
  const float* bp = b.f32();
  parallel_for(
      a.numel(),
      [&](int64_t s, int64_t e) {
        for (int64_t i = s; i < e; ++i) ap[i] += bp[i];
      },
      kGrain);
}

void add_broadcast_(Tensor& x, const Tensor& rows) {
  require_f32_contiguous(x, "add_broadcast");
  require_f32_contiguous(rows, "add_broadcast rows");
  op_checks::broadcast_rows(x, rows);
  const int64_t n = rows.numel();
  float* p = x.f32();
  const float* r = rows.f32();
  parallel_for(x.numel() / n, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t i = 0; i < n; ++i) p[b * n + i] += r[i];
  });
}

void copy_(Tensor& dst, const Tensor& src) {
  require_same(dst, src, "copy");
  std::memcpy(dst.f32(), src.f32(), dst.nbytes());
}

void add_channel_bias_(Tensor& x, const Tensor& bias) {
  require_f32_contiguous(x, "add_channel_bias");
  const int64_t B = x.dim(0), C = x.dim(1), spatial = x.numel() / (B * C);
  require_shape(bias, {B, C}, "channel bias");
  float* p = x.f32();
  const float* bp = bias.f32();
  parallel_for(B * C, [&](int64_t s, int64_t e) {
    for (int64_t bc = s; bc < e; ++bc)
      for (int64_t i = 0; i < spatial; ++i) p[bc * spatial + i] += bp[bc];
  });
}

Tensor concat(const Tensor& a, const Tensor& b, int dim) {
  require_f32_contiguous(a, "concat");
  require_f32_contiguous(b, "concat");
  Tensor out = Tensor::empty(op_checks::concat(a, b, dim));
  // Both inputs are [outer, dim, inner] blocks; the output interleaves them per outer index.
  int64_t outer = 1;
  for (int i = 0; i < dim; ++i) outer *= a.dim(i);
  const int64_t run_a = a.numel() / outer, run_b = b.numel() / outer;
  for (int64_t o = 0; o < outer; ++o) {
    std::memcpy(out.f32() + o * (run_a + run_b), a.f32() + o * run_a,
                sizeof(float) * size_t(run_a));
    std::memcpy(out.f32() + o * (run_a + run_b) + run_a, b.f32() + o * run_b,
                sizeof(float) * size_t(run_b));
  }
  return out;
}

Tensor repeat_batch(const Tensor& x, int64_t batch) {
  require_f32_contiguous(x, "repeat_batch");
  if (x.ndim() < 1 || x.dim(0) < 1 || batch < 1)
    throw ShapeError("repeat_batch: " + x.shape().str() + " to batch " + std::to_string(batch));
  Shape s = x.shape();
  s[0] = batch;
  Tensor out = Tensor::empty(s);
  const int64_t one = x.numel() / x.dim(0);
  for (int64_t b = 0; b < batch; ++b)
    std::memcpy(out.f32() + b * one, x.f32() + (b % x.dim(0)) * one, sizeof(float) * size_t(one));
  return out;
}

Tensor nchw_to_nlc(const Tensor& x) {
  require_f32_contiguous(x, "nchw_to_nlc");
  const int64_t B = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
  Tensor out = Tensor::empty({B, HW, C});
  const float* s = x.f32();
  float* d = out.f32();
  constexpr int64_t T = 32;  // tiled transpose for cache locality
  parallel_for(B * ((HW + T - 1) / T), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t b = p / ((HW + T - 1) / T), l0 = (p % ((HW + T - 1) / T)) * T;
      const int64_t l1 = std::min(l0 + T, HW);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t l = l0; l < l1; ++l) d[(b * HW + l) * C + c] = s[(b * C + c) * HW + l];
    }
  });
  return out;
}

Tensor nlc_to_nchw(const Tensor& x, int64_t h, int64_t w) {
  require_f32_contiguous(x, "nlc_to_nchw");
  const int64_t B = x.dim(0), HW = x.dim(1), C = x.dim(2);
  if (HW != h * w) throw ShapeError("nlc_to_nchw: length " + std::to_string(HW) + " != h*w");
  Tensor out = Tensor::empty({B, C, h, w});
  const float* s = x.f32();
  float* d = out.f32();
  constexpr int64_t T = 32;
  parallel_for(B * ((C + T - 1) / T), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t b = p / ((C + T - 1) / T), c0 = (p % ((C + T - 1) / T)) * T;
      const int64_t c1 = std::min(c0 + T, C);
      for (int64_t l = 0; l < HW; ++l)
        for (int64_t c = c0; c < c1; ++c) d[(b * C + c) * HW + l] = s[(b * HW + l) * C + c];
    }
  });
  return out;
}

Tensor embedding(const Tensor& ids, const Tensor& table) {
  if (ids.dtype() != DType::I64)
    throw ShapeError("embedding: ids must be I64, got " + ids.describe());
  if (table.ndim() != 2 || !table.is_contiguous())
    throw ShapeError("embedding: expected a contiguous 2-D table, got " + table.describe());
  const Weight rows(table);  // F32 rows copied, F16/BF16 rows widened exactly
  const int64_t V = table.dim(0), D = table.dim(1), n = ids.numel();
  Shape s = ids.shape();
  s.push_back(D);
  Tensor out = Tensor::empty(s);
  const int64_t* ip = ids.data_as<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    op_checks::index_in_range("embedding: token id", ip[i], "vocabulary of", V);
    rows.widen_rows(ip[i], ip[i] + 1, out.f32() + i * D);
  }
  return out;
}

Tensor select_tokens(const Tensor& x, const Tensor& positions) {
  require_f32_contiguous(x, "select_tokens");
  op_checks::select_tokens(x, positions);
  const int64_t B = x.dim(0), L = x.dim(1), D = x.dim(2);
  Tensor out = Tensor::empty({B, D});
  const int64_t* pos = positions.data_as<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    op_checks::index_in_range("select_tokens: position", pos[b], "length", L);
    std::memcpy(out.f32() + b * D, x.f32() + (b * L + pos[b]) * D, sizeof(float) * size_t(D));
  }
  return out;
}

int64_t count_nonfinite(const Tensor& x) {
  require_f32_contiguous(x, "count_nonfinite");
  const float* p = x.f32();
  int64_t bad = 0;
  for (int64_t i = 0; i < x.numel(); ++i) bad += std::isfinite(p[i]) ? 0 : 1;
  return bad;
}

}  // namespace diffuse::cpu
