// Scalar semantics of Expr instructions, shared by every host backend so that the optimised and
// the reference evaluators round identically. Compiled with -ffp-contract=off (see CMakeLists).
#include <cmath>

namespace diffuse::ops {

inline float apply_binary(Expr::Code c, float a, float b) {
  switch (c) {
    case Expr::Code::Add:
      return a + b;
    case Expr::Code::Sub:
      return a - b;
    case Expr::Code::Mul:
      return a * b;
    case Expr::Code::Div:
      return a / b;
    case Expr::Code::Min:
      return (a < b || std::isnan(a)) ? a : b;
    case Expr::Code::Max:
      return (a > b || std::isnan(a)) ? a : b;
    default:
      return 0.f;
  }
}

inline float apply_unary(Expr::Code c, float a) {
  switch (c) {
    case Expr::Code::Neg:
      return -a;
    case Expr::Code::Exp:
      return std::exp(a);
    case Expr::Code::Sqrt:
      return std::sqrt(a);
    case Expr::Code::Abs:
      return std::fabs(a);
    default:
      return 0.f;
  }
}

/// torch.clamp: NaN stays NaN; when lo > hi the result is hi.
inline float apply_clamp(float x, float lo, float hi) {
  const float t = x < lo ? lo : x;
  return t > hi ? hi : t;
}

}  // namespace diffuse::ops
