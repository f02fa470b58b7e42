// Element-wise expressions: how the schedulers, guidance and pipeline stages write their update
// formulas as one fused op that every backend evaluates.
//
//   using namespace diffuse::ops::expr;
//   Tensor prev = ops::evaluate(c1 * in(0) - c2 * in(1), {sample, model_output});
//
// An Expr is postfix code over the inputs (same-shape F32 tensors) and float32 constants. Each
// operation rounds to float32 once, in the order the C++ expression is written (operator
// precedence and associativity as for floats), and nothing is contracted into an FMA unless the
// expression says fma(): so an Expr evaluates exactly as the scalar loop `c1 * x[i] - c2 * m[i]`,
// which is how torch's chain of tensor ops rounds. Backends may vectorise, never reorder.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace diffuse::ops {

class Expr {
 public:
  enum class Code : uint8_t {
    Input,     // push inputs[arg]
    Constant,  // push value
    Add,
    Sub,
    Mul,
    Div,
    Neg,
    Exp,
    Sqrt,
    Abs,
    Min,  // torch.minimum semantics are not needed: NaN-propagating a < b ? a : b
    Max,
    Fma,    // a * b + c, rounded once (std::fma; torch's addcmul on CPU)
    Clamp,  // clamp(a, lo, hi) keeping NaN, as torch.clamp; lo/hi are the next two stack values
  };
  struct Instr {
    Code code;
    int32_t arg = 0;  // input index for Input
    float value = 0;  // constant for Constant
  };

  Expr(float constant);  // NOLINT(google-explicit-constructor): constants mix with inputs freely
  static Expr input(int index);

  const std::vector<Instr>& code() const { return code_; }
  /// Inputs referenced: 1 + the highest input index.
  int arity() const;
  /// Stack slots evaluation needs.
  int stack_depth() const;
  std::string str() const;  // postfix text, for errors and tests

  friend Expr operator+(const Expr& a, const Expr& b) { return combine(a, b, Code::Add); }
  friend Expr operator-(const Expr& a, const Expr& b) { return combine(a, b, Code::Sub); }
  friend Expr operator*(const Expr& a, const Expr& b) { return combine(a, b, Code::Mul); }
  friend Expr operator/(const Expr& a, const Expr& b) { return combine(a, b, Code::Div); }
  friend Expr operator-(const Expr& a) { return unary(a, Code::Neg); }
  friend Expr exp(const Expr& a) { return unary(a, Code::Exp); }
  friend Expr sqrt(const Expr& a) { return unary(a, Code::Sqrt); }
  friend Expr abs(const Expr& a) { return unary(a, Code::Abs); }
  friend Expr min(const Expr& a, const Expr& b) { return combine(a, b, Code::Min); }
  friend Expr max(const Expr& a, const Expr& b) { return combine(a, b, Code::Max); }
  friend Expr fma(const Expr& a, const Expr& b, const Expr& c);
  friend Expr clamp(const Expr& x, const Expr& lo, const Expr& hi);

 private:
  Expr() = default;
  static Expr combine(const Expr& a, const Expr& b, Code c);
  static Expr unary(const Expr& a, Code c);
  std::vector<Instr> code_;
};

namespace expr {
/// The i-th input tensor of ops::evaluate.
inline Expr in(int index) {
  return Expr::input(index);
}
using ops::Expr;
}  // namespace expr

/// Applies one instruction to stack values (the scalar semantics every backend reproduces).
inline float apply_binary(Expr::Code c, float a, float b);
inline float apply_unary(Expr::Code c, float a);

}  // namespace diffuse::ops

#include "backend/expr_scalar.inl"
