// Arithmetic cost of the ops, counted at the op seam (ops.cpp) into the calling thread's
// FlopCounter while a FlopCounterScope is active: what `diffuse bench` divides by stage times to
// report GFLOP/s. Only the ops that dominate a model's arithmetic (linear, conv2d, attention)
// are counted, as multiply-adds x 2; element-wise ops, norms and softmax are left out, as in the
// usual FLOP counts of Stable Diffusion.
#pragma once

#include "backend/op_table.h"
#include "backend/ops.h"

namespace diffuse::ops {

/// FLOPs counted on one thread; a pipeline installs its own for a generation.
struct FlopCounter {
  double flops = 0;
};

/// Makes `counter` the calling thread's counter until the scope ends (nesting restores the
/// previous one).
class FlopCounterScope {
 public:
  explicit FlopCounterScope(FlopCounter& counter);
  ~FlopCounterScope();
  FlopCounterScope(const FlopCounterScope&) = delete;
  FlopCounterScope& operator=(const FlopCounterScope&) = delete;

 private:
  FlopCounter* previous_;
};

/// The calling thread's counter, or nullptr.
FlopCounter* current_flop_counter();

/// One tag type per op of op_table.h, to pick the cost formula by overload.
namespace op_tags {
#define DIFFUSE_OP_TAG(ret, op, params, args, primary) \
  struct op {};
DIFFUSE_BACKEND_OPS(DIFFUSE_OP_TAG)
#undef DIFFUSE_OP_TAG
}  // namespace op_tags

/// FLOPs of one call: 0 for the ops not counted.
template <typename Tag, typename... Args>
double op_flops(Tag, const Args&...) {
  return 0;
}
double op_flops(op_tags::linear, const Tensor& x, const Weight& w, const Tensor* bias);
double op_flops(op_tags::conv2d, const Tensor& x, const Weight& w, const Tensor* bias,
                const Conv2dParams& p);
double op_flops(op_tags::attention, const Tensor& q, const Tensor& k, const Tensor& v, int heads,
                bool causal, WeightCompute compute, AttentionKernel kernel);

}  // namespace diffuse::ops
