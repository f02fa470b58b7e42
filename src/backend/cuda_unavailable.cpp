// The CUDA backend's entry points in a build without it (DIFFUSE_CUDA=OFF or no nvcc found):
// availability() says so, so that --backend cuda is a clear error rather than a link failure.
#ifndef DIFFUSE_HAVE_CUDA
#include "backend/backend.h"
#include "diffuse/error.hpp"

namespace diffuse::cuda {

const Availability& availability() {
  static const Availability none{
      {},
      "this build of diffuse has no CUDA backend (rebuild with the CUDA toolkit's nvcc on "
      "PATH, or -DDIFFUSE_CUDA=ON)"};
  return none;
}

const Backend& backend() {
  throw Error("CUDA backend: " + availability().problem);
}

}  // namespace diffuse::cuda
#endif
