// The CUDA backend's process-wide state: the runtime started on first use, one cuBLAS handle, and
// the device copies of host tensors the ops were given (layer weights, norms, biases), uploaded
// once and kept while their host tensor lives in the cache. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "backend/cuda/cublas_library.h"
#include "core/tensor.h"
#include "core/weight.h"

namespace diffuse::cuda {

/// Throws Error "CUDA backend: <what>: <CUDA's message>" unless `status` (a cudaError_t) is 0.
void check_cuda(int status, const char* what);
/// After kernel launches: the launch error, if any, as check_cuda.
void check_launch(const char* what);

class Context {
 public:
  static Context& get();
  const Cublas& cublas() const { return *cublas_; }
  /// `t` on `device`: itself when it is there already; a host tensor's device copy, made once.
  Tensor on_device(const Tensor& t, Device device);
  /// A layer matrix as float32 on `device` (16-bit and int8 weights widened once, on the host).
  Tensor weight_on_device(const Weight& w, Device device);

 private:
  Context();
  std::unique_ptr<Cublas> cublas_;
  std::mutex mutex_;
  // (host address, bytes, dtype) -> {host tensor kept alive, device copy}
  std::map<std::tuple<const void*, size_t, int>, std::pair<Tensor, Tensor>> uploads_;
};

}  // namespace diffuse::cuda
