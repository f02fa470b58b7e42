// cuBLAS, opened at run time (dlopen) rather than linked: a diffuse binary built with the CUDA
// backend then starts on machines without cuBLAS (using the CPU), and finds it where it is
// installed as a library or as NVIDIA's Python wheel (LD_LIBRARY_PATH). Only the calls the
// backend makes are bound.
#pragma once

#include <string>

namespace diffuse::cuda {

class Cublas {
 public:
  /// Opens libcublas and creates a handle on the current device; Error naming the library and
  /// what was tried when it cannot.
  Cublas();
  ~Cublas();
  Cublas(const Cublas&) = delete;
  Cublas& operator=(const Cublas&) = delete;

  /// Row-major C[m, n] = alpha * A[m, k] op(B) + beta * C, float32 (B [k, n], or [n, k] when
  /// `trans_b`), leading dimensions in elements; runs on the default stream. `batch` > 1 repeats
  /// it over matrices `stride_a`, `stride_b`, `stride_c` elements apart.
  void sgemm(bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
             int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
             int64_t batch = 1, int64_t stride_a = 0, int64_t stride_b = 0,
             int64_t stride_c = 0) const;

 private:
  void* library_ = nullptr;
  void* handle_ = nullptr;
  int (*destroy_)(void*) = nullptr;
  int (*gemm_strided_batched_)(void*, int, int, int, int, int, const float*, const float*, int,
                               long long, const float*, int, long long, const float*, float*, int,
                               long long, int) = nullptr;
};

}  // namespace diffuse::cuda
