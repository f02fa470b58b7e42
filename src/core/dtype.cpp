#include "core/dtype.h"

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace diffuse {

namespace {
struct DTypeInfo {
  DType type;
  size_t size;
  std::string_view name;
};
constexpr DTypeInfo kInfos[] = {
    {DType::F32, 4, "F32"},   {DType::F16, 2, "F16"}, {DType::BF16, 2, "BF16"},
    {DType::F64, 8, "F64"},   {DType::I64, 8, "I64"}, {DType::I32, 4, "I32"},
    {DType::I16, 2, "I16"},   {DType::I8, 1, "I8"},   {DType::U8, 1, "U8"},
    {DType::Bool, 1, "BOOL"},
};
}  // namespace

size_t dtype_size(DType t) {
  return kInfos[static_cast<int>(t)].size;
}
std::string_view dtype_name(DType t) {
  return kInfos[static_cast<int>(t)].name;
}

bool dtype_from_name(std::string_view name, DType* out) {
  for (const auto& i : kInfos) {
    if (i.name == name) {
      *out = i.type;
      return true;
    }
  }
  return false;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const int32_t exp = static_cast<int32_t>((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = x & 0x7fffff;
  if (((x >> 23) & 0xff) == 0xff) return static_cast<uint16_t>(sign | 0x7c00 | (mant ? 0x200 : 0));
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    const int shift = 14 - exp;
    uint32_t half_mant = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half_mant & 1))) ++half_mant;
    return static_cast<uint16_t>(sign | half_mant);
  }
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;  // may carry into the exponent: correct
  return static_cast<uint16_t>(h);
}

uint16_t float_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);  // NaN
  x += 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

namespace {

#if defined(__x86_64__)
// 16 floats at a time by the same integer rule (vcvtneps2bf16 would treat denormals as zero).
// GCC 12 warns about the "undefined" pass-through operand inside its own intrinsic headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
/// bf16 bits of 16 floats, nearest even, NaNs kept quiet: float_to_bf16 on each lane, stored.
__attribute__((target("avx512f,avx512bw"))) inline void store_bf16x16(__m512i u, uint16_t* dst) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
  const __m512i quiet = _mm512_set1_epi32(0x40);
  const __m512i hi = _mm512_srli_epi32(u, 16);
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(hi, one))), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), inf);
  const __m512i r = _mm512_mask_mov_epi32(rounded, nan, _mm512_or_si512(hi, quiet));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm512_cvtepi32_epi16(r));
}
__attribute__((target("avx512f,avx512bw"))) int64_t round_bf16_avx512(const float* src, int64_t n,
                                                                      uint16_t* dst) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) store_bf16x16(_mm512_loadu_si512(src + i), dst + i);
  return i;
}
__attribute__((target("avx512f,avx512bw"))) int64_t scaled_int8_to_bf16_avx512(const int8_t* q,
                                                                               int64_t n,
                                                                               float scale,
                                                                               uint16_t* dst) {
  const __m512 s = _mm512_set1_ps(scale);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i));
    const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes)), s);
    store_bf16x16(_mm512_castps_si512(v), dst + i);
  }
  return i;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

#if defined(__x86_64__)
bool avx512_usable() {
  static const bool usable =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  return usable;
}
#endif

}  // namespace

void scaled_int8_to_bf16(const int8_t* q, int64_t n, float scale, uint16_t* dst) {
  int64_t i = 0;
#if defined(__x86_64__)
  if (avx512_usable()) i = scaled_int8_to_bf16_avx512(q, n, scale, dst);
#endif
  for (; i < n; ++i) dst[i] = float_to_bf16(static_cast<float>(q[i]) * scale);
}

void round_to_bf16_in_place(float* p, int64_t n) {
  // Branch-free so that it vectorizes: float_to_bf16's rounding, the low half cleared.
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t x = __builtin_bit_cast(uint32_t, p[i]);
    const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) & 0xffff0000u;
    const uint32_t quiet_nan = (x & 0xffff0000u) | 0x00400000u;
    const uint32_t nan_mask = 0u - static_cast<uint32_t>((x & 0x7fffffffu) > 0x7f800000u);
    p[i] = __builtin_bit_cast(float, (quiet_nan & nan_mask) | (rounded & ~nan_mask));
  }
}

void floats_to_bf16(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
#if defined(__x86_64__)
  if (avx512_usable()) i = round_bf16_avx512(src, n, dst);
#endif
  for (; i < n; ++i) dst[i] = float_to_bf16(src[i]);
}

}  // namespace diffuse
