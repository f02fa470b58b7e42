// diffusers' _threshold_sample for one batch item, shared by the host backends so that both
// round identically (the sort order is what makes the quantile exact, not how it is reached).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "backend/expr.h"

namespace diffuse::ops {

inline void dynamic_threshold_item(float* q, int64_t n, float ratio, float max_value) {
  if (n <= 0) return;
  std::vector<float> a(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) a[static_cast<size_t>(i)] = std::fabs(q[i]);
  std::sort(a.begin(), a.end());
  // torch.quantile: the rank q * (n - 1) and the interpolation weight are float32 (q becomes a
  // tensor of the input's dtype), the interpolation is torch.lerp.
  const float rank = ratio * static_cast<float>(n - 1);
  const float below = std::floor(rank);
  const float w = rank - below;
  const float lo = a[static_cast<size_t>(below)];
  const float hi = a[static_cast<size_t>(std::ceil(rank))];
  float s = w < 0.5f ? lo + w * (hi - lo) : hi - (hi - lo) * (1.0f - w);
  // torch.clamp(s, min=1, max=sample_max_value): the max wins when they cross.
  s = std::min(std::max(s, 1.0f), max_value);
  for (int64_t i = 0; i < n; ++i) q[i] = apply_clamp(q[i], -s, s) / s;
}

}  // namespace diffuse::ops
