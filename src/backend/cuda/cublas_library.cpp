#include "backend/cuda/cublas_library.h"

#include <dlfcn.h>

#include "diffuse/error.hpp"

namespace diffuse::cuda {

namespace {

// cublas_api.h's values, so that no cuBLAS header is needed to build.
constexpr int kOpN = 0, kOpT = 1;
constexpr int kStatusSuccess = 0;

void* open_cublas() {
  for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"})
    if (void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)) return lib;
  throw Error(
      "CUDA backend: cuBLAS not found (tried libcublas.so.13, .12 and libcublas.so: install the "
      "CUDA toolkit's cuBLAS, or put NVIDIA's nvidia-cublas wheel's lib folder on "
      "LD_LIBRARY_PATH)");
}

template <typename F>
F bind(void* lib, const char* symbol) {
  void* f = dlsym(lib, symbol);
  if (!f) throw Error(std::string("CUDA backend: cuBLAS has no ") + symbol);
  return reinterpret_cast<F>(f);
}

void check(int status, const char* what) {
  if (status != kStatusSuccess)
    throw Error(std::string("CUDA backend: ") + what + " failed (cuBLAS status " +
                std::to_string(status) + ")");
}

}  // namespace

Cublas::Cublas() : library_(open_cublas()) {
  auto create = bind<int (*)(void**)>(library_, "cublasCreate_v2");
  destroy_ = bind<int (*)(void*)>(library_, "cublasDestroy_v2");
  gemm_strided_batched_ =
      bind<decltype(gemm_strided_batched_)>(library_, "cublasSgemmStridedBatched");
  check(create(&handle_), "cublasCreate");
}

Cublas::~Cublas() {
  if (handle_ && destroy_) destroy_(handle_);
  if (library_) dlclose(library_);
}

void Cublas::sgemm(bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                   int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
                   int64_t batch, int64_t stride_a, int64_t stride_b, int64_t stride_c) const {
  // cuBLAS is column-major: the row-major C = A op(B) is the column-major C^T = op(B)^T A^T, so
  // B comes first, transposed when the row-major B is not.
  check(gemm_strided_batched_(handle_, trans_b ? kOpT : kOpN, kOpN, static_cast<int>(n),
                              static_cast<int>(m), static_cast<int>(k), &alpha, b,
                              static_cast<int>(ldb), stride_b, a, static_cast<int>(lda), stride_a,
                              &beta, c, static_cast<int>(ldc), stride_c, static_cast<int>(batch)),
        "cublasSgemmStridedBatched");
}

}  // namespace diffuse::cuda
