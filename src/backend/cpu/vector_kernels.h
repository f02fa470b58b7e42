// The CPU backend's element-wise row kernels (softmax, norm statistics and affine maps, SiLU),
// compiled once per instruction set and picked at run time from the CPU's features, so that the
// default build runs on any x86-64 (or other) CPU and still uses AVX2 where there is one. oneDNN,
// which does the GEMMs and convolutions, picks its own kernels the same way.
//
// Every set computes the same bits (no FMA contraction, fixed summation orders): a result does
// not depend on which set ran (tests/backend/test_vector_kernels.cpp checks each set this CPU
// can run against the baseline).
#pragma once

#include <cstdint>
#include <vector>

namespace diffuse::cpu {

struct VectorKernels {
  const char* isa;  // "avx512", "avx2", "baseline"
  /// Softmax over row[0, valid) in place (max-subtracted, sum in double); row[valid, total) = 0.
  void (*softmax_row)(float* row, int64_t valid, int64_t total);
  /// Largest of p[0, n), n >= 1 (a running softmax's maximum).
  float (*max)(const float* p, int64_t n);
  /// row[j] = exp(row[j] - shift) for j < valid (shift >= every row[j]), row[valid, total) = 0;
  /// returns the sum of the valid exponentials in double: one block of an online softmax.
  double (*exp_shifted)(float* row, int64_t valid, int64_t total, float shift);
  /// Sum of p[0, n) in double, and of (p[i] - mean)^2.
  double (*sum)(const float* p, int64_t n);
  double (*sum_sq_dev)(const float* p, int64_t n, double mean);
  /// out[i] = in[i] * a + b, then SiLU when `silu`.
  void (*affine)(const float* in, float* out, int64_t n, float a, float b, bool silu);
  /// out[i] = (in[i] - mean) * inv * gamma[i] + beta[i]  (layer norm of one row).
  void (*normalize)(const float* in, float* out, int64_t n, float mean, float inv,
                    const float* gamma, const float* beta);
  /// p[i] = p[i] * sigmoid(k * p[i]): SiLU (k = 1) and CLIP's quick GELU (k = 1.702).
  void (*sigmoid_gate)(float* p, int64_t n, float k);
  /// out[i] = GELU(in[i]) (erf form; out may be in).
  void (*gelu)(const float* in, float* out, int64_t n);
  /// out[i] = hidden[i] * GELU(gate[i]): the GEGLU feed-forward's activation.
  void (*gelu_gate)(const float* hidden, const float* gate, float* out, int64_t n);
};

/// The fastest set this CPU runs (chosen once).
const VectorKernels& vector_kernels();
/// Every set this CPU can run, the baseline first.
std::vector<const VectorKernels*> runnable_vector_kernels();

}  // namespace diffuse::cpu
