#include "schedulers/numpy_math.h"

#include <cmath>
#include <limits>

namespace diffuse {

float numpy_logf(float x) {
  if (std::isnan(x)) return std::numeric_limits<float>::quiet_NaN();
  if (x < 0) return -std::numeric_limits<float>::quiet_NaN();
  if (x == 0) return -std::numeric_limits<float>::infinity();
  if (std::isinf(x)) return x;
  // numpy's simd_log_FLOAT (loops_exponent_log.dispatch.c.src), one lane of it. Its coefficients
  // are float literals, and every multiply-add is a fused one.
  constexpr float p0 = 0.000000000000000000000e+00f, p1 = 9.999999999999998702752e-01f,
                  p2 = 2.112677543073053063722e+00f, p3 = 1.480000633576506585156e+00f,
                  p4 = 3.808837741388407920751e-01f, p5 = 2.589979117907922693523e-02f;
  constexpr float q0 = 1.000000000000000000000e+00f, q1 = 2.612677543073109236779e+00f,
                  q2 = 2.453006071784736363091e+00f, q3 = 9.864942958519418960339e-01f,
                  q4 = 1.546476374983906719538e-01f, q5 = 5.875095403124574342950e-03f;
  constexpr float ln2 = 0.693147180559945309417232121458176568f;
  constexpr float sqrt1_2 = 0.707106781186547524400844362104849039f;
  // x = m * 2^e with m in [0.5, 1): what both the AVX2 bit manipulation and AVX512's
  // getexp + 1 / getmant(p5_1) produce, denormals included.
  int e = 0;
  float m = std::frexp(x, &e);
  float exponent = static_cast<float>(e);
  if (m <= sqrt1_2) {
    m = m + m;
    exponent = exponent - 1.0f;
  }
  m = m - 1.0f;
  float num = std::fma(p5, m, p4);
  num = std::fma(num, m, p3);
  num = std::fma(num, m, p2);
  num = std::fma(num, m, p1);
  num = std::fma(num, m, p0);
  float den = std::fma(q5, m, q4);
  den = std::fma(den, m, q3);
  den = std::fma(den, m, q2);
  den = std::fma(den, m, q1);
  den = std::fma(den, m, q0);
  return std::fma(exponent, ln2, num / den);
}

}  // namespace diffuse
