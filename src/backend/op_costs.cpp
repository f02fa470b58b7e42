#include "backend/op_costs.h"

#include "backend/op_checks.h"

namespace diffuse::ops {

namespace {
thread_local FlopCounter* t_counter = nullptr;
}

FlopCounterScope::FlopCounterScope(FlopCounter& counter) : previous_(t_counter) {
  t_counter = &counter;
}
FlopCounterScope::~FlopCounterScope() {
  t_counter = previous_;
}
FlopCounter* current_flop_counter() {
  return t_counter;
}

double op_flops(op_tags::linear, const Tensor& x, const Weight& w, const Tensor*) {
  return 2.0 * double(x.numel()) * double(w.dim(0));  // rows * K * N * 2
}

double op_flops(op_tags::conv2d, const Tensor& x, const Weight& w, const Tensor*,
                const Conv2dParams& p) {
  const int64_t kh = w.dim(2), kw = w.dim(3), s = p.stride;
  const int64_t oh = (x.dim(2) + p.pad_top + p.pad_bottom - kh) / s + 1;
  const int64_t ow = (x.dim(3) + p.pad_left + p.pad_right - kw) / s + 1;
  return 2.0 * double(x.dim(0)) * double(w.dim(0)) * double(oh * ow) * double(x.dim(1) * kh * kw);
}

double op_flops(op_tags::attention, const Tensor& q, const Tensor& k, const Tensor&, int, bool,
                WeightCompute, AttentionKernel) {
  // Q K^T and P V: 2 * 2 * B * Lq * Lk * C (C = heads * head size)
  return 4.0 * double(q.dim(0)) * double(q.dim(1)) * double(k.dim(1)) * double(q.dim(2));
}

}  // namespace diffuse::ops
