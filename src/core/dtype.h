// Element types. Quantized block types (int8 with scales, palettized) will get their own entries;
// code that switches on DType must handle "unsupported" explicitly rather than assume f32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace diffuse {

enum class DType : uint8_t { F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);  // safetensors spelling: "F32", "F16", ...
bool dtype_from_name(std::string_view name, DType* out);

// IEEE half and bfloat16 conversions (round-to-nearest-even on the way down).
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
inline float bf16_to_float(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
uint16_t float_to_bf16(float f);
/// dst[i] = float_to_bf16(src[i]) for n values, 16 at a time where the CPU has AVX-512.
void floats_to_bf16(const float* src, int64_t n, uint16_t* dst);
/// p[i] = bf16_to_float(float_to_bf16(p[i])) for n values: float32 holding exactly the bfloat16
/// values a bf16 product would multiply (NaNs stay NaN).
void round_to_bf16_in_place(float* p, int64_t n);
/// dst[i] = bf16(float(q[i]) * scale), nearest even: an int8 weight row dequantized straight to
/// bfloat16 (the same bits as floats_to_bf16 of the float32 products), 16 at a time on AVX-512.
void scaled_int8_to_bf16(const int8_t* q, int64_t n, float scale, uint16_t* dst);

}  // namespace diffuse
