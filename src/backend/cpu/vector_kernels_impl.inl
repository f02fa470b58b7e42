// The bodies of one VectorKernels set, in namespace DIFFUSE_VECTOR_ISA: included by
// vector_kernels_<isa>.cpp, each compiled with its instruction set's flags and
// -ffp-contract=off (CMakeLists.txt).
#include "backend/cpu/vector_kernels.h"
#include "backend/cpu/vector_math.h"

namespace diffuse::cpu::DIFFUSE_VECTOR_ISA {

namespace {

void softmax_row(float* row, int64_t valid, int64_t total) {
  const float m = valid > 0 ? max_f32(row, valid) : -INFINITY;
  for (int64_t j = 0; j < valid; ++j) row[j] = exp_nonpositive_f32(row[j] - m);
  const float inv = static_cast<float>(1.0 / sum_f64(row, valid));
  for (int64_t j = 0; j < valid; ++j) row[j] *= inv;
  for (int64_t j = valid; j < total; ++j) row[j] = 0.f;
}

double exp_shifted(float* row, int64_t valid, int64_t total, float shift) {
  for (int64_t j = 0; j < valid; ++j) row[j] = exp_nonpositive_f32(row[j] - shift);
  const double sum = sum_f64(row, valid);
  for (int64_t j = valid; j < total; ++j) row[j] = 0.f;
  return sum;
}

void affine(const float* in, float* out, int64_t n, float a, float b, bool silu) {
  if (silu) {
    for (int64_t i = 0; i < n; ++i) out[i] = silu_f32(in[i] * a + b);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = in[i] * a + b;
  }
}

void normalize(const float* in, float* out, int64_t n, float mean, float inv, const float* gamma,
               const float* beta) {
  for (int64_t i = 0; i < n; ++i) out[i] = (in[i] - mean) * inv * gamma[i] + beta[i];
}

void sigmoid_gate(float* p, int64_t n, float k) {
  for (int64_t i = 0; i < n; ++i) p[i] = p[i] / (1.f + exp_f32(-k * p[i]));
}

void gelu(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_f32(in[i]);
}

void gelu_gate(const float* hidden, const float* gate, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = hidden[i] * gelu_f32(gate[i]);
}

}  // namespace

extern const VectorKernels kernels;
const VectorKernels kernels{DIFFUSE_VECTOR_ISA_NAME,
                            softmax_row,
                            max_f32,
                            exp_shifted,
                            sum_f64,
                            sum_sq_dev_f64,
                            affine,
                            normalize,
                            sigmoid_gate,
                            gelu,
                            gelu_gate};

}  // namespace diffuse::cpu::DIFFUSE_VECTOR_ISA
