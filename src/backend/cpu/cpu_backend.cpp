#include "backend/cpu/kernels.h"

namespace diffuse::cpu {

const Backend& backend() {
  static const Backend table = [] {
    Backend b;
    b.name = "cpu";
    b.device = kCpu;
#define DIFFUSE_BACKEND_ENTRY(ret, op, params, args, primary) b.op = &op;
    DIFFUSE_BACKEND_OPS(DIFFUSE_BACKEND_ENTRY)
#undef DIFFUSE_BACKEND_ENTRY
    return b;
  }();
  return table;
}

}  // namespace diffuse::cpu
