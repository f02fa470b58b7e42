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

// What happens once an op has run, whatever its backend: a streamed layer matrix
// (Weight::streamed, --low-memory) gives its file pages back. Other ops: nothing.
template <typename Tag, typename... Args>
void after_op(Tag, const Args&...) noexcept {}
void after_op(op_tags::linear, const Tensor&, const Weight& w, const Tensor*) noexcept {
  w.release_pages();
}
void after_op(op_tags::conv2d, const Tensor&, const Weight& w, const Tensor*,
              const Conv2dParams&) noexcept {
  w.release_pages();
}

/// Runs `f` when the scope ends (after the op's result is made, or as an exception leaves it).
template <typename F>
struct AtScopeEnd {
  F f;
  ~AtScopeEnd() { f(); }
};
template <typename F>
AtScopeEnd(F) -> AtScopeEnd<F>;

}  // namespace

// (a, b, c) -> , a, b, c: the tag goes before an op's arguments.
#define DIFFUSE_COMMA_ARGS(...) , __VA_ARGS__

// Counting happens before the call: in-place ops may change their arguments.
#define DIFFUSE_DISPATCH(ret, op, params, args, primary)                                           \
  ret op params {                                                                                  \
    const Tensor& primary_ = primary;                                                              \
    const Backend& backend_ = backend_for(primary_.device());                                      \
    if (FlopCounter* counter_ = current_flop_counter())                                            \
      counter_->flops += op_flops(op_tags::op {} DIFFUSE_COMMA_ARGS args);                         \
    const AtScopeEnd after_{[&]() noexcept { after_op(op_tags::op {} DIFFUSE_COMMA_ARGS args); }}; \
    return Finish<ret>::run(primary_, [&]() -> ret { return backend_.op args; });                  \
  }
DIFFUSE_BACKEND_OPS(DIFFUSE_DISPATCH)
#undef DIFFUSE_DISPATCH

}  // namespace diffuse::ops
