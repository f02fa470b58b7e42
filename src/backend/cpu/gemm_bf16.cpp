// bfloat16 GEMM (WeightCompute::BF16) through oneDNN's matmul primitive, split over our pool.
//
// Why a matmul primitive: oneDNN's C API has sgemm and int8 GEMMs but no bf16 one; its matmul
// runs bf16 x bf16 -> f32 on AVX512_BF16's vdpbf16ps (two products per lane per instruction, f32
// sums): on this project's 2-core Zen 5 machine the UNet's and VAE's convolutions and linear layers
// run at 1.4-2.2x their sgemm rate (docs/PERFORMANCE.md, "bf16 compute").
//
// On a CPU without AVX512_BF16 the same products are computed by widening both operands to f32
// and calling sgemm: the values multiplied are the same bf16 values, so results agree up to the
// order of the float32 sums, only slower. The pipeline says so through its warnings.
//
// Each worker thread keeps its primitives by shape (the UNet calls a few dozen shapes every step)
// and its own scratchpad, as conv2d_direct.cpp explains.
#include <map>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "backend/cpu/kernels.h"
#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "diffuse/error.hpp"

namespace diffuse::cpu {

namespace {

using dnnl::memory;
using Dims = memory::dims;

dnnl::engine& cpu_engine() {
  thread_local dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

/// One GEMM shape's primitive: C[m,n] (+)= A[m,k] B[k,n], A and B bf16 with row strides, B read
/// transposed (stored [n,k]) when `trans_b`.
struct MatmulKey {
  int64_t m, n, k, lda, ldb, ldc;
  bool trans_b, accumulate;
  float alpha;
  bool operator<(const MatmulKey& o) const {
    return std::tie(m, n, k, lda, ldb, ldc, trans_b, accumulate, alpha) <
           std::tie(o.m, o.n, o.k, o.lda, o.ldb, o.ldc, o.trans_b, o.accumulate, o.alpha);
  }
};

struct Matmul {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul primitive;
};

const Matmul& matmul_for(const MatmulKey& key) {
  // A few dozen shapes per model; bounded so that a caller cycling through sizes cannot grow it.
  thread_local std::map<MatmulKey, Matmul> cache;
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  if (cache.size() > 512) cache.clear();
  const memory::desc a(Dims{key.m, key.k}, memory::data_type::bf16, Dims{key.lda, 1});
  const memory::desc b(Dims{key.k, key.n}, memory::data_type::bf16,
                       key.trans_b ? Dims{1, key.ldb} : Dims{key.ldb, 1});
  const memory::desc c(Dims{key.m, key.n}, memory::data_type::f32, Dims{key.ldc, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (key.alpha != 1.f) attr.set_output_scales(0, {key.alpha});
  if (key.accumulate) {
    dnnl::post_ops sum;
    sum.append_sum(1.f);
    attr.set_post_ops(sum);
  }
  Matmul mm;
  mm.pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attr, cpu_engine());
  mm.primitive = dnnl::matmul(mm.pd);
  return cache.emplace(key, std::move(mm)).first->second;
}

void matmul_serial(const MatmulKey& key, const uint16_t* a, const uint16_t* b, float* c) {
  keep_onednn_on_this_thread();
  const Matmul& mm = matmul_for(key);
  dnnl::engine& engine = cpu_engine();
  thread_local std::vector<std::byte> scratch;
  const size_t scratch_bytes = mm.pd.scratchpad_desc().get_size();
  if (scratch.size() < scratch_bytes) scratch.resize(scratch_bytes);
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(mm.pd.src_desc(), engine, const_cast<uint16_t*>(a))},
      {DNNL_ARG_WEIGHTS, memory(mm.pd.weights_desc(), engine, const_cast<uint16_t*>(b))},
      {DNNL_ARG_DST, memory(mm.pd.dst_desc(), engine, c)}};
  if (scratch_bytes > 0)
    args.emplace(DNNL_ARG_SCRATCHPAD, memory(mm.pd.scratchpad_desc(), engine, scratch.data()));
  dnnl::stream stream(engine);
  mm.primitive.execute(stream, args);
  stream.wait();
}

}  // namespace

bool has_bf16_dot_product() {
  return cpu_has_avx512_bf16();
}

Tensor rounded_to_bf16(const Tensor& x) {
  Tensor out = Tensor::empty(x.shape(), DType::BF16, x.device());
  const float* src = x.f32();
  auto* dst = out.data_as<uint16_t>();
  parallel_for(
      x.numel(), [&](int64_t i0, int64_t i1) { floats_to_bf16(src + i0, i1 - i0, dst + i0); },
      1 << 15);
  return out;
}

void gemm_bf16_widened(int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda,
                       const uint16_t* b, int64_t ldb, bool trans_b, bool accumulate, float* c,
                       int64_t ldc, float alpha) {
  const int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
  Tensor a32 = Tensor::empty({m, k}), b32 = Tensor::empty({b_rows, b_cols});
  float *ap = a32.f32(), *bp = b32.f32();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) ap[i * k + j] = bf16_to_float(a[i * lda + j]);
  for (int64_t i = 0; i < b_rows; ++i)
    for (int64_t j = 0; j < b_cols; ++j) bp[i * b_cols + j] = bf16_to_float(b[i * ldb + j]);
  gemm(false, trans_b, m, n, k, alpha, ap, k, bp, b_cols, accumulate ? 1.f : 0.f, c, ldc);
}

void gemm_bf16(int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda, const uint16_t* b,
               int64_t ldb, bool trans_b, bool accumulate, float* c, int64_t ldc, float alpha) {
  if (m == 0 || n == 0) return;
  if (!has_bf16_dot_product()) {
    gemm_bf16_widened(m, n, k, a, lda, b, ldb, trans_b, accumulate, c, ldc, alpha);
    return;
  }
  auto call = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const uint16_t* bp = trans_b ? b + n0 * ldb : b + n0;
    matmul_serial({m1 - m0, n1 - n0, k, lda, ldb, ldc, trans_b, accumulate, alpha}, a + m0 * lda,
                  bp, c + m0 * ldc + n0);
  };
  try {
    split_gemm_output(m, n, k, 64, call);
  } catch (const dnnl::error& e) {
    throw ShapeError("bf16 gemm: oneDNN rejected " + std::to_string(m) + "x" + std::to_string(n) +
                     "x" + std::to_string(k) + ": " + e.what());
  }
}

}  // namespace diffuse::cpu
