#include "core/weight.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/cpu_features.h"
#include "core/mapped_file.h"
#include "core/name_table.h"
#include "core/thread_pool.h"
#include "diffuse/error.hpp"

namespace diffuse {

namespace {

// The library is built for the baseline x86-64, which has no F16C; the conversions below use it
// where the CPU has it (every x86-64 CPU since 2012), chosen once at run time. Both paths round
// the same way (IEEE nearest-even), so the results are identical.
#if defined(__x86_64__)
__attribute__((target("avx,f16c"))) int64_t widen_half_f16c(const uint16_t* src, int64_t n,
                                                            float* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  return i;
}

__attribute__((target("avx,f16c"))) int64_t narrow_to_half_f16c(const float* src, int64_t n,
                                                                uint16_t* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  return i;
}
#endif

void widen_half(const uint16_t* src, int64_t n, float* dst) {
  int64_t i = 0;
#if defined(__x86_64__)
  if (cpu_has_f16c()) i = widen_half_f16c(src, n, dst);
#endif
  for (; i < n; ++i) dst[i] = half_to_float(src[i]);
}

void widen_bf16(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = static_cast<uint32_t>(src[i]) << 16;
    std::memcpy(dst + i, &u, 4);
  }
}

void dequantize_row(const int8_t* q, int64_t n, float scale, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(q[i]) * scale;
}

void narrow_to_half(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
#if defined(__x86_64__)
  if (cpu_has_f16c()) i = narrow_to_half_f16c(src, n, dst);
#endif
  for (; i < n; ++i) dst[i] = float_to_half(src[i]);
}

/// A float32 matrix rounded to 16 bits (nearest even), in parallel: the conversion runs once per
/// weight at load, over the whole model.
Tensor narrow_matrix(const Tensor& w32, DType dtype) {
  Tensor out = Tensor::empty(w32.shape(), dtype, w32.device());
  const float* src = w32.f32();
  auto* dst = out.data_as<uint16_t>();
  parallel_for(
      w32.numel(),
      [&](int64_t i0, int64_t i1) {
        if (dtype == DType::F16) {
          narrow_to_half(src + i0, i1 - i0, dst + i0);
        } else {
          floats_to_bf16(src + i0, i1 - i0, dst + i0);
        }
      },
      1 << 16);
  return out;
}

/// Symmetric per-output-channel int8 of a F32, F16 or BF16 matrix, row by row (a 16-bit source
/// is widened one row at a time, never as a whole float32 copy).
Weight quantize_int8(const Tensor& w) {
  const Weight source(w);
  const int64_t rows = w.dim(0), cols = source.row_size();
  Tensor q = Tensor::empty(w.shape(), DType::I8, w.device());
  Tensor scales = Tensor::empty({rows}, DType::F32, w.device());
  auto* dst = q.data_as<int8_t>();
  float* sp = scales.f32();
  parallel_for(
      rows,
      [&](int64_t r0, int64_t r1) {
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t r = r0; r < r1; ++r) {
          source.widen_rows(r, r + 1, row.data());
          float amax = 0.f;
          for (float v : row) amax = std::max(amax, std::fabs(v));
          const float scale = amax > 0.f ? amax / 127.f : 1.f;
          sp[r] = scale;
          for (int64_t c = 0; c < cols; ++c) {
            // round half to even, as torch.round
            const float v = std::nearbyint(row[static_cast<size_t>(c)] / scale);
            dst[r * cols + c] = static_cast<int8_t>(std::clamp(v, -127.f, 127.f));
          }
        }
      },
      std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(cols, 1)));
  return Weight(q, scales);
}

}  // namespace

namespace {
constexpr NameTable<WeightPrecision, 4> kPrecisionNames{{{"f32", WeightPrecision::F32},
                                                         {"f16", WeightPrecision::F16},
                                                         {"bf16", WeightPrecision::BF16},
                                                         {"int8", WeightPrecision::Int8}}};
}  // namespace

bool parse_weight_precision(std::string_view name, WeightPrecision* out) {
  return value_named(kPrecisionNames, name, out);
}

std::string_view weight_precision_name(WeightPrecision p) {
  return name_of(kPrecisionNames, p);
}

std::string weight_precision_choices() {
  return names_listed(kPrecisionNames);
}

Weight::Weight(Tensor q, Tensor per_channel_scales)
    : values(std::move(q)), scales(std::move(per_channel_scales)) {
  if (values.dtype() != DType::I8 || scales.dtype() != DType::F32 || values.ndim() < 1 ||
      scales.ndim() != 1 || scales.dim(0) != values.dim(0))
    throw ShapeError("quantized weight: expected I8 values [out, ...] and F32 scales [out], got " +
                     values.describe() + " and " + scales.describe());
}

Weight Weight::reshape(std::initializer_list<int64_t> dims) const {
  Weight w = *this;
  w.values = values.reshape(dims);
  if (quantized() && w.values.dim(0) != values.dim(0))
    throw ShapeError("quantized weight: reshape must keep the output dimension, got " +
                     w.values.shape().str() + " from " + values.shape().str());
  return w;
}

void Weight::release_pages() const noexcept {
  if (streamed && values.defined()) release_mapped_pages(values.raw(), values.nbytes());
}

size_t Weight::nbytes() const {
  return values.nbytes() + (scales.defined() ? scales.nbytes() : 0);
}

void Weight::widen_rows(int64_t r0, int64_t r1, float* dst) const {
  const int64_t cols = row_size(), n = (r1 - r0) * cols;
  if (r0 < 0 || r1 > values.dim(0) || r0 > r1)
    throw ShapeError("weight rows [" + std::to_string(r0) + ", " + std::to_string(r1) +
                     ") out of " + values.describe());
  if (!values.is_contiguous()) throw ShapeError("weight: expected contiguous values");
  switch (values.dtype()) {
    case DType::F32:
      std::memcpy(dst, values.f32() + r0 * cols, sizeof(float) * size_t(n));
      return;
    case DType::F16:
      widen_half(values.data_as<uint16_t>() + r0 * cols, n, dst);
      return;
    case DType::BF16:
      widen_bf16(values.data_as<uint16_t>() + r0 * cols, n, dst);
      return;
    case DType::I8:
      if (!quantized()) break;
      for (int64_t r = r0; r < r1; ++r)
        dequantize_row(values.data_as<int8_t>() + r * cols, cols, scales.f32()[r],
                       dst + (r - r0) * cols);
      return;
    default:
      break;
  }
  throw ShapeError("weight: cannot compute with " + values.describe() +
                   (values.dtype() == DType::I8 ? " without per-channel scales" : ""));
}

void Weight::rows_to_bf16(int64_t r0, int64_t r1, uint16_t* dst) const {
  const int64_t cols = row_size();
  if (values.dtype() == DType::BF16 && values.is_contiguous() && r0 >= 0 && r1 <= dim(0) &&
      r0 <= r1) {
    std::memcpy(dst, values.data_as<uint16_t>() + r0 * cols,
                sizeof(uint16_t) * size_t((r1 - r0) * cols));
    return;
  }
  for (int64_t r = r0; r < r1; ++r) {
    uint16_t* out = dst + (r - r0) * cols;
    if (values.dtype() == DType::I8 && quantized() && values.is_contiguous() && r >= 0 &&
        r < dim(0)) {
      scaled_int8_to_bf16(values.data_as<int8_t>() + r * cols, cols, scales.f32()[r], out);
    } else {
      std::vector<float> row(static_cast<size_t>(cols));
      widen_rows(r, r + 1, row.data());
      floats_to_bf16(row.data(), cols, out);
    }
  }
}

Tensor Weight::to_f32() const {
  if (values.dtype() == DType::F32 && !quantized()) return values.contiguous();
  Tensor out = Tensor::empty(values.shape(), DType::F32, values.device());
  widen_rows(0, values.dim(0), out.f32());
  return out;
}

Weight Weight::from_tensor(const Tensor& w, WeightPrecision precision) {
  const bool sixteen_bit = w.dtype() == DType::F16 || w.dtype() == DType::BF16;
  switch (precision) {
    case WeightPrecision::F32:
      return sixteen_bit ? w.contiguous() : w.to(DType::F32).contiguous();
    case WeightPrecision::F16:
      return sixteen_bit ? w.contiguous()
                         : narrow_matrix(w.to(DType::F32).contiguous(), DType::F16);
    case WeightPrecision::BF16: {
      Weight out = w.dtype() == DType::BF16
                       ? Weight(w.contiguous())
                       : Weight(narrow_matrix(Weight(w.contiguous()).to_f32(), DType::BF16));
      out.compute = WeightCompute::BF16;
      return out;
    }
    case WeightPrecision::Int8: {
      Weight out = quantize_int8(sixteen_bit ? w.contiguous() : w.to(DType::F32).contiguous());
      out.compute = WeightCompute::BF16;
      return out;
    }
  }
  throw ShapeError("weight: unknown precision");
}

}  // namespace diffuse
