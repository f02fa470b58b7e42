#include "backend/cpu/kernels.h"

namespace diffuse::cpu {

const Backend& backend() {
  static const Backend table = DIFFUSE_BACKEND_TABLE("cpu", kCpu);
  return table;
}

}  // namespace diffuse::cpu
