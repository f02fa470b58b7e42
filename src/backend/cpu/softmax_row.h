// The softmax of one row, shared by softmax_ and attention (which masks a causal tail).
#pragma once

#include <cmath>
#include <cstdint>

#include "backend/cpu/vector_math.h"

namespace diffuse::cpu {

/// Softmax over row[0, valid) in place (max-subtracted, sum in double); row[valid, total) = 0.
inline void softmax_row(float* row, int64_t valid, int64_t total) {
  const float m = valid > 0 ? max_f32(row, valid) : -INFINITY;
  for (int64_t j = 0; j < valid; ++j) row[j] = exp_f32(row[j] - m);
  const double sum = sum_f64(row, valid);
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = 0; j < valid; ++j) row[j] *= inv;
  for (int64_t j = valid; j < total; ++j) row[j] = 0.f;
}

}  // namespace diffuse::cpu
