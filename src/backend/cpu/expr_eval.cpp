// ops::evaluate on the CPU: the postfix program runs over blocks of elements, one vector loop per
// instruction, so every element sees exactly the scalar operations of expr_scalar.inl in order
// (compiled with -ffp-contract=off: no FMA contraction unless the Expr asks for fma()).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/kernels.h"
#include "backend/dynamic_threshold.h"
#include "backend/op_checks.h"
#include "core/thread_pool.h"
#include "diffuse/error.hpp"

namespace diffuse::cpu {

namespace {

using Code = Expr::Code;
constexpr int64_t kBlock = 256;

template <Code C>
void binary(float* a, const float* b, int64_t n) {
  for (int64_t j = 0; j < n; ++j) a[j] = ops::apply_binary(C, a[j], b[j]);
}
template <Code C>
void unary(float* a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) a[j] = ops::apply_unary(C, a[j]);
}

void run_block(const std::vector<Expr::Instr>& code, const std::vector<const float*>& in,
               int64_t start, int64_t n, float* stack, float* out) {
  int sp = 0;
  auto slot = [&](int i) { return stack + i * kBlock; };
  for (const Expr::Instr& ins : code) {
    switch (ins.code) {
      case Code::Input:
        std::memcpy(slot(sp++), in[static_cast<size_t>(ins.arg)] + start,
                    sizeof(float) * size_t(n));
        break;
      case Code::Constant:
        std::fill(slot(sp), slot(sp) + n, ins.value);
        ++sp;
        break;
      case Code::Add:
        binary<Code::Add>(slot(sp - 2), slot(sp - 1), n), --sp;
        break;
      case Code::Sub:
        binary<Code::Sub>(slot(sp - 2), slot(sp - 1), n), --sp;
        break;
      case Code::Mul:
        binary<Code::Mul>(slot(sp - 2), slot(sp - 1), n), --sp;
        break;
      case Code::Div:
        binary<Code::Div>(slot(sp - 2), slot(sp - 1), n), --sp;
        break;
      case Code::Min:
        binary<Code::Min>(slot(sp - 2), slot(sp - 1), n), --sp;
        break;
      case Code::Max:
        binary<Code::Max>(slot(sp - 2), slot(sp - 1), n), --sp;
        break;
      case Code::Neg:
        unary<Code::Neg>(slot(sp - 1), n);
        break;
      case Code::Exp:
        unary<Code::Exp>(slot(sp - 1), n);
        break;
      case Code::Sqrt:
        unary<Code::Sqrt>(slot(sp - 1), n);
        break;
      case Code::Abs:
        unary<Code::Abs>(slot(sp - 1), n);
        break;
      case Code::Fma: {
        float *a = slot(sp - 3), *b = slot(sp - 2), *c = slot(sp - 1);
        for (int64_t j = 0; j < n; ++j) a[j] = std::fma(a[j], b[j], c[j]);
        sp -= 2;
        break;
      }
      case Code::Clamp: {
        float *x = slot(sp - 3), *lo = slot(sp - 2), *hi = slot(sp - 1);
        for (int64_t j = 0; j < n; ++j) x[j] = ops::apply_clamp(x[j], lo[j], hi[j]);
        sp -= 2;
        break;
      }
    }
  }
  std::memcpy(out + start, slot(0), sizeof(float) * size_t(n));
}

}  // namespace

Tensor evaluate(const Expr& e, const std::vector<Tensor>& inputs) {
  op_checks::evaluate(e, inputs);
  std::vector<const float*> in;
  for (const Tensor& t : inputs) {
    require_f32_contiguous(t, "evaluate input");
    in.push_back(t.f32());
  }
  Tensor out = Tensor::empty(inputs[0].shape());
  float* o = out.f32();
  const int depth = std::max(1, e.stack_depth());
  parallel_for(
      out.numel(),
      [&](int64_t b0, int64_t b1) {
        std::vector<float> stack(static_cast<size_t>(depth * kBlock));
        for (int64_t s = b0; s < b1; s += kBlock)
          run_block(e.code(), in, s, std::min(kBlock, b1 - s), stack.data(), o);
      },
      1 << 14);
  return out;
}

void dynamic_threshold_(Tensor& x, float ratio, float max_value) {
  require_f32_contiguous(x, "dynamic_threshold");
  const int64_t batch = x.ndim() > 0 ? x.dim(0) : 1;
  const int64_t per = batch > 0 ? x.numel() / batch : 0;
  float* p = x.f32();
  parallel_for(batch, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      ops::dynamic_threshold_item(p + b * per, per, ratio, max_value);
  });
}

}  // namespace diffuse::cpu
