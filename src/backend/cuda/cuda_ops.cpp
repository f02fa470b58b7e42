// The CUDA backend's ops: float32 on one GPU, the ops' contracts checked as every backend checks
// them (op_checks.h). Host tensors an op is given beside its device input (layer weights, norms,
// biases) are uploaded once through the Context. GEMMs go to cuBLAS; convolutions are im2col +
// cuBLAS; attention runs blocks of up to 1024 queries (the scores of one block per head at a
// time, never the whole L x L matrix) through cuBLAS and a row softmax. WeightCompute::BF16
// computes in float32 here. Everything runs on the default stream, in order.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_context.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/dynamic_threshold.h"
#include "backend/op_checks.h"
#include "diffuse/error.hpp"

namespace diffuse::cuda {

DIFFUSE_BACKEND_OPS(DIFFUSE_DECLARE_OP)

namespace {

constexpr Device kCuda0{DeviceType::Cuda, 0};
constexpr int64_t kAttentionQueryBlock = 1024;

Context& ctx() {
  return Context::get();
}
float* f(Tensor& t) {
  return t.data_as<float>();
}
const float* f(const Tensor& t) {
  return t.data_as<float>();
}
void require_device_f32(const Tensor& t, const char* what) {
  require_f32_contiguous(t, what);
  if (t.device().type != DeviceType::Cuda)
    throw ShapeError(std::string(what) + ": expected a tensor on the GPU, got one on " +
                     t.device().name());
}
Tensor like(const Tensor& x, const Shape& s) {
  return Tensor::empty(s, DType::F32, x.device());
}
/// `t` on `device` (a host tensor: its cached upload, made contiguous first).
Tensor to_device(const Tensor& t, Device device) {
  return ctx().on_device(t.device().is_host() ? t.contiguous() : t, device);
}

}  // namespace

Tensor linear(const Tensor& x, const Weight& weight, const Tensor* bias) {
  require_device_f32(x, "linear input");
  op_checks::linear(x, weight.values, bias);
  const Tensor w = ctx().weight_on_device(weight, x.device());
  const int64_t k = w.dim(1), n = w.dim(0), m = x.numel() / k;
  Shape s = x.shape();
  s[-1] = n;
  Tensor out = like(x, s);
  ctx().cublas().sgemm(true, m, n, k, 1.f, f(x), k, f(w), k, 0.f, f(out), n);
  if (bias) kernels::add_row_bias(f(out), f(to_device(*bias, x.device())), m, n);
  check_launch("linear");
  return out;
}

Tensor conv2d(const Tensor& x, const Weight& weight, const Tensor* bias, const Conv2dParams& p) {
  require_device_f32(x, "conv2d input");
  int64_t OH = 0, OW = 0;
  op_checks::conv2d(x, weight.values, bias, p, &OH, &OW);
  const Tensor w = ctx().weight_on_device(weight, x.device());
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t O = w.dim(0), KH = w.dim(2), KW = w.dim(3), CKK = C * KH * KW, P = OH * OW;
  Tensor out = like(x, {B, O, OH, OW});
  const bool pointwise = KH == 1 && KW == 1 && p.stride == 1 && p.pad_top == 0 && p.pad_left == 0 &&
                         p.pad_bottom == 0 && p.pad_right == 0;
  Tensor cols;
  if (!pointwise) {
    cols = like(x, {B, CKK, P});
    kernels::im2col(f(x), f(cols), B, C, H, W, KH, KW, p.stride, p.pad_top, p.pad_left, OH, OW);
  }
  const float* columns = pointwise ? f(x) : f(cols);
  ctx().cublas().sgemm(false, O, P, CKK, 1.f, f(w), CKK, columns, P, 0.f, f(out), P, B, 0, CKK * P,
                       O * P);
  if (bias) kernels::add_channel_bias(f(out), f(to_device(*bias, x.device())), B, O, P);
  check_launch("conv2d");
  return out;
}

Tensor upsample_nearest_2x(const Tensor& x) {
  return upsample_nearest(x, 2 * x.dim(2), 2 * x.dim(3));
}

Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) {
  require_device_f32(x, "upsample_nearest");
  if (x.ndim() != 4 || out_h <= 0 || out_w <= 0)
    throw ShapeError("upsample_nearest: " + x.describe() + " to " + std::to_string(out_h) + "x" +
                     std::to_string(out_w));
  Tensor out = like(x, {x.dim(0), x.dim(1), out_h, out_w});
  kernels::upsample_nearest(f(x), f(out), x.dim(0) * x.dim(1), x.dim(2), x.dim(3), out_h, out_w);
  check_launch("upsample_nearest");
  return out;
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  require_device_f32(x, "layer_norm");
  const int64_t d = x.dim(-1);
  require_shape(gamma, {d}, "layer_norm gamma");
  require_shape(beta, {d}, "layer_norm beta");
  Tensor out = like(x, x.shape());
  kernels::layer_norm(f(x), f(out), f(to_device(gamma, x.device())), f(to_device(beta, x.device())),
                      x.numel() / d, d, eps);
  check_launch("layer_norm");
  return out;
}

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps,
                  bool fuse_silu) {
  require_device_f32(x, "group_norm");
  const int64_t B = x.dim(0), C = x.dim(1);
  if (groups <= 0 || C % groups != 0)
    throw ShapeError("group_norm: " + std::to_string(C) + " channels in " + std::to_string(groups) +
                     " groups");
  require_shape(gamma, {C}, "group_norm gamma");
  require_shape(beta, {C}, "group_norm beta");
  Tensor out = like(x, x.shape());
  kernels::group_norm(f(x), f(out), f(to_device(gamma, x.device())), f(to_device(beta, x.device())),
                      B, C, x.numel() / (B * C), groups, eps, fuse_silu);
  check_launch("group_norm");
  return out;
}

void silu_(Tensor& x) {
  require_device_f32(x, "silu");
  kernels::activate(f(x), x.numel(), kernels::Activation::Silu);
  check_launch("silu");
}
void gelu_(Tensor& x) {
  require_device_f32(x, "gelu");
  kernels::activate(f(x), x.numel(), kernels::Activation::Gelu);
  check_launch("gelu");
}
void quick_gelu_(Tensor& x) {
  require_device_f32(x, "quick_gelu");
  kernels::activate(f(x), x.numel(), kernels::Activation::QuickGelu);
  check_launch("quick_gelu");
}

Tensor geglu(const Tensor& x) {
  require_device_f32(x, "geglu");
  const int64_t d2 = x.dim(-1);
  if (d2 % 2 != 0) throw ShapeError("geglu: odd last dimension " + x.describe());
  Shape s = x.shape();
  s[-1] = d2 / 2;
  Tensor out = like(x, s);
  kernels::geglu(f(x), f(out), x.numel() / d2, d2 / 2);
  check_launch("geglu");
  return out;
}

void softmax_(Tensor& x) {
  require_device_f32(x, "softmax");
  const int64_t d = x.dim(-1);
  kernels::softmax_rows(f(x), x.numel() / d, d, -1);
  check_launch("softmax");
}

void add_(Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape())
    throw ShapeError("add: shapes " + a.shape().str() + " and " + b.shape().str());
  require_device_f32(a, "add");
  kernels::add(f(a), f(to_device(b, a.device())), a.numel());
  check_launch("add");
}

void add_channel_bias_(Tensor& x, const Tensor& bias) {
  require_device_f32(x, "channel bias");
  const int64_t B = x.dim(0), C = x.dim(1);
  require_shape(bias, {B, C}, "channel bias");
  kernels::add_per_plane(f(x), f(to_device(bias, x.device())), B * C, x.numel() / (B * C));
  check_launch("add_channel_bias");
}

void add_broadcast_(Tensor& x, const Tensor& rows) {
  require_device_f32(x, "add_broadcast");
  op_checks::broadcast_rows(x, rows);
  kernels::add_broadcast(f(x), f(to_device(rows, x.device())), x.numel(), rows.numel());
  check_launch("add_broadcast");
}

void scale_(Tensor& x, float s) {
  require_device_f32(x, "scale");
  kernels::scale(f(x), x.numel(), s);
  check_launch("scale");
}

void clamp_(Tensor& x, float lo, float hi) {
  require_device_f32(x, "clamp");
  kernels::clamp(f(x), x.numel(), lo, hi);
  check_launch("clamp");
}

void copy_(Tensor& dst, const Tensor& src) {
  if (dst.shape() != src.shape())
    throw ShapeError("copy: shapes " + dst.shape().str() + " and " + src.shape().str());
  require_device_f32(dst, "copy destination");
  const Tensor s = src.device() == dst.device() ? src : src.on(dst.device());
  require_f32_contiguous(s, "copy source");
  check_cuda(cudaMemcpy(dst.raw(), s.raw(), dst.nbytes(), cudaMemcpyDeviceToDevice), "copy");
}

Tensor concat(const Tensor& a, const Tensor& b, int dim) {
  const Shape s = op_checks::concat(a, b, dim);
  require_device_f32(a, "concat");
  const Tensor bd = to_device(b, a.device());
  int64_t inner = 1, outer = 1;
  for (int i = dim + 1; i < a.ndim(); ++i) inner *= a.dim(i);
  for (int i = 0; i < dim; ++i) outer *= a.dim(i);
  Tensor out = like(a, s);
  kernels::concat(f(a), f(bd), f(out), outer, a.dim(dim), b.dim(dim), inner);
  check_launch("concat");
  return out;
}

Tensor repeat_batch(const Tensor& x, int64_t batch) {
  require_device_f32(x, "repeat_batch");
  Shape s = x.shape();
  s[0] = batch;
  Tensor out = like(x, s);
  kernels::repeat_batch(f(x), f(out), x.numel() / x.dim(0), x.dim(0), out.numel());
  check_launch("repeat_batch");
  return out;
}

Tensor nchw_to_nlc(const Tensor& x) {
  require_device_f32(x, "nchw_to_nlc");
  const int64_t B = x.dim(0), C = x.dim(1), L = x.dim(2) * x.dim(3);
  Tensor out = like(x, {B, L, C});
  kernels::transpose_last_two(f(x), f(out), B, C, L);
  check_launch("nchw_to_nlc");
  return out;
}

Tensor nlc_to_nchw(const Tensor& x, int64_t h, int64_t w) {
  require_device_f32(x, "nlc_to_nchw");
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2);
  if (L != h * w) throw ShapeError("nlc_to_nchw: length " + std::to_string(L) + " != h*w");
  Tensor out = like(x, {B, C, h, w});
  kernels::transpose_last_two(f(x), f(out), B, L, C);
  check_launch("nlc_to_nchw");
  return out;
}

Tensor embedding(const Tensor& ids, const Tensor& table) {
  if (ids.dtype() != DType::I64)
    throw ShapeError("embedding: ids must be I64, got " + ids.describe());
  const int64_t V = table.dim(0), D = table.dim(1);
  const Tensor host_ids = ids.to_host().contiguous();
  for (int64_t i = 0; i < host_ids.numel(); ++i)
    op_checks::index_in_range("embedding: token id", host_ids.data_as<int64_t>()[i],
                              "vocabulary of", V);
  const Device device = ids.device();
  const Tensor rows = ctx().weight_on_device(Weight(table), device);
  Shape s = ids.shape();
  s.push_back(D);
  Tensor out = Tensor::empty(s, DType::F32, device);
  kernels::gather_rows(f(rows), ids.data_as<int64_t>(), f(out), ids.numel(), D);
  check_launch("embedding");
  return out;
}

Tensor select_tokens(const Tensor& x, const Tensor& positions) {
  op_checks::select_tokens(x, positions);
  require_device_f32(x, "select_tokens");
  const Tensor host = positions.to_host().contiguous();
  for (int64_t b = 0; b < host.numel(); ++b)
    op_checks::index_in_range("select_tokens: position", host.data_as<int64_t>()[b], "length",
                              x.dim(1));
  const Tensor device_positions = host.on(x.device());
  Tensor out = like(x, {x.dim(0), x.dim(2)});
  kernels::select_tokens(f(x), device_positions.data_as<int64_t>(), f(out), x.dim(0), x.dim(1),
                         x.dim(2));
  check_launch("select_tokens");
  return out;
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal,
                 WeightCompute, AttentionKernel) {
  require_device_f32(q, "attention q");
  const Tensor kd = to_device(k, q.device()), vd = to_device(v, q.device());
  const int64_t B = q.dim(0), Lq = q.dim(1), C = q.dim(2), Lk = k.dim(1);
  if (k.dim(0) != B || v.dim(0) != B || k.dim(2) != C || v.dim(2) != C || v.dim(1) != Lk ||
      heads <= 0 || C % heads != 0)
    throw ShapeError("attention: q " + q.shape().str() + ", k " + k.shape().str() + ", v " +
                     v.shape().str() + " with " + std::to_string(heads) + " heads");
  const int64_t D = C / heads, block = std::min(Lq, kAttentionQueryBlock);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  Tensor out = like(q, {B, Lq, C});
  Tensor scores = like(q, {B, block, Lk});
  const Cublas& blas = ctx().cublas();
  for (int64_t r0 = 0; r0 < Lq; r0 += block) {
    const int64_t rows = std::min(block, Lq - r0);
    for (int64_t h = 0; h < heads; ++h) {
      blas.sgemm(true, rows, Lk, D, scale, f(q) + r0 * C + h * D, C, f(kd) + h * D, C, 0.f,
                 f(scores), Lk, B, Lq * C, Lk * C, block * Lk);
      for (int64_t b = 0; b < B; ++b)
        kernels::softmax_rows(f(scores) + b * block * Lk, rows, Lk, causal ? r0 : -1);
      blas.sgemm(false, rows, D, Lk, 1.f, f(scores), Lk, f(vd) + h * D, C, 0.f,
                 f(out) + r0 * C + h * D, C, B, block * Lk, Lk * C, Lq * C);
    }
  }
  check_launch("attention");
  return out;
}

Tensor evaluate(const Expr& e, const std::vector<Tensor>& inputs) {
  op_checks::evaluate(e, inputs);
  const Device device = inputs.at(0).device();
  if (static_cast<int>(e.code().size()) > kernels::kMaxExprCode ||
      e.stack_depth() > kernels::kMaxExprStack || e.arity() > kernels::kMaxExprInputs)
    throw ShapeError("evaluate: expression too long for the CUDA evaluator: " + e.str());
  static_assert(
      static_cast<int>(Expr::Code::Clamp) == 13 && static_cast<int>(Expr::Code::Fma) == 12,
      "cuda_kernels.cu's evaluator numbers the instructions as backend/expr.h");
  std::vector<Tensor> on_device;
  std::vector<const float*> pointers;
  for (const Tensor& t : inputs) {
    on_device.push_back(to_device(t, device));
    require_device_f32(on_device.back(), "evaluate input");
    pointers.push_back(f(on_device.back()));
  }
  std::vector<kernels::ExprInstr> code;
  for (const Expr::Instr& i : e.code())
    code.push_back({static_cast<uint8_t>(i.code), i.arg, i.value});
  Tensor out = like(on_device[0], inputs[0].shape());
  kernels::evaluate(code.data(), static_cast<int>(code.size()), pointers.data(),
                    static_cast<int>(pointers.size()), f(out), out.numel());
  check_launch("evaluate");
  return out;
}

void dynamic_threshold_(Tensor& x, float ratio, float max_value) {
  // Rare (DDPM/DPM-Solver thresholding): the quantile's sort runs on the host.
  Tensor host = x.to_host().contiguous().clone();
  const int64_t batch = host.ndim() > 0 ? host.dim(0) : 1;
  const int64_t per = batch > 0 ? host.numel() / batch : 0;
  for (int64_t b = 0; b < batch; ++b)
    ops::dynamic_threshold_item(host.f32() + b * per, per, ratio, max_value);
  const Tensor back = host.on(x.device());
  copy_(x, back);
}

int64_t count_nonfinite(const Tensor& x) {
  require_device_f32(x, "count_nonfinite");
  unsigned long long* count = nullptr;
  check_cuda(cudaMalloc(&count, sizeof *count), "cudaMalloc");
  unsigned long long result = 0;
  cudaMemset(count, 0, sizeof *count);
  kernels::count_nonfinite(f(x), x.numel(), count);
  const cudaError_t status = cudaMemcpy(&result, count, sizeof result, cudaMemcpyDeviceToHost);
  cudaFree(count);
  check_cuda(status, "count_nonfinite");
  return static_cast<int64_t>(result);
}

const Backend& backend() {
  Context::get();  // starts the runtime; Error naming what is missing when it cannot
  static const Backend table = DIFFUSE_BACKEND_TABLE("cuda", kCuda0);
  return table;
}

}  // namespace diffuse::cuda
