// ops:: dispatchers, generated from op_table.h: each picks the backend of its primary tensor's
// device and labels the result with that device.
#include "backend/ops.h"

#include "backend/backend.h"

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

#define DIFFUSE_DISPATCH(ret, op, params, args, primary)                          \
  ret op params {                                                                 \
    const Tensor& primary_ = primary;                                             \
    const Backend& backend_ = backend_for(primary_.device());                     \
    return Finish<ret>::run(primary_, [&]() -> ret { return backend_.op args; }); \
  }
DIFFUSE_BACKEND_OPS(DIFFUSE_DISPATCH)
#undef DIFFUSE_DISPATCH

}  // namespace diffuse::ops
