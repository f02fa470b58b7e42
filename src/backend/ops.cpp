// ops:: dispatchers, generated from op_table.h: each picks the backend of its primary tensor's
// device and labels the result with that device.
#include "backend/ops.h"

#include "backend/backend.h"
#include "backend/op_costs.h"

namespace diffuse::ops {

namespace {

template <typename R>
struct Finish {
  template <typename F>
  static R run(const Tensor&, F&& f) {
    return f();
  }
};
template <>
struct Finish<Tensor> {
  template <typename F>
  static Tensor run(const Tensor& primary, F&& f) {
    return f().on(primary.device());
  }
};

}  // namespace

// (a, b, c) -> , a, b, c: the tag goes before an op's arguments.
#define DIFFUSE_COMMA_ARGS(...) , __VA_ARGS__

// Counting happens before the call: in-place ops may change their arguments.
#define DIFFUSE_DISPATCH(ret, op, params, args, primary)                          \
  ret op params {                                                                 \
    const Tensor& primary_ = primary;                                             \
    const Backend& backend_ = backend_for(primary_.device());                     \
    if (FlopCounter* counter_ = current_flop_counter())                           \
      counter_->flops += op_flops(op_tags::op {} DIFFUSE_COMMA_ARGS args);        \
    return Finish<ret>::run(primary_, [&]() -> ret { return backend_.op args; }); \
  }
DIFFUSE_BACKEND_OPS(DIFFUSE_DISPATCH)
#undef DIFFUSE_DISPATCH

}  // namespace diffuse::ops
