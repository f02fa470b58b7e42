#include "backend/expr.h"

#include <algorithm>

namespace diffuse::ops {

Expr::Expr(float constant) : code_{{Code::Constant, 0, constant}} {}

Expr Expr::input(int index) {
  Expr e;
  e.code_.push_back({Code::Input, index, 0.f});
  return e;
}

Expr Expr::combine(const Expr& a, const Expr& b, Code c) {
  Expr e;
  e.code_.reserve(a.code_.size() + b.code_.size() + 1);
  e.code_ = a.code_;
  e.code_.insert(e.code_.end(), b.code_.begin(), b.code_.end());
  e.code_.push_back({c, 0, 0.f});
  return e;
}

Expr Expr::unary(const Expr& a, Code c) {
  Expr e = a;
  e.code_.push_back({c, 0, 0.f});
  return e;
}

Expr fma(const Expr& a, const Expr& b, const Expr& c) {
  Expr e = Expr::combine(a, b, Expr::Code::Fma);
  e.code_.pop_back();
  e.code_.insert(e.code_.end(), c.code_.begin(), c.code_.end());
  e.code_.push_back({Expr::Code::Fma, 0, 0.f});
  return e;
}

Expr clamp(const Expr& x, const Expr& lo, const Expr& hi) {
  Expr e = Expr::combine(x, lo, Expr::Code::Clamp);
  e.code_.pop_back();
  e.code_.insert(e.code_.end(), hi.code_.begin(), hi.code_.end());
  e.code_.push_back({Expr::Code::Clamp, 0, 0.f});
  return e;
}

int Expr::arity() const {
  int n = 0;
  for (const Instr& i : code_)
    if (i.code == Code::Input) n = std::max(n, i.arg + 1);
  return n;
}

namespace {
int pops(Expr::Code c) {
  switch (c) {
    case Expr::Code::Input:
    case Expr::Code::Constant:
      return 0;
    case Expr::Code::Neg:
    case Expr::Code::Exp:
    case Expr::Code::Sqrt:
    case Expr::Code::Abs:
      return 1;
    case Expr::Code::Fma:
    case Expr::Code::Clamp:
      return 3;
    default:
      return 2;
  }
}
}  // namespace

int Expr::stack_depth() const {
  int depth = 0, most = 0;
  for (const Instr& i : code_) {
    depth += 1 - pops(i.code);
    most = std::max(most, depth);
  }
  return most;
}

std::string Expr::str() const {
  static const char* names[] = {"in",  "const", "+",   "-",   "*",   "/",   "neg",
                                "exp", "sqrt",  "abs", "min", "max", "fma", "clamp"};
  std::string s;
  for (const Instr& i : code_) {
    if (!s.empty()) s += ' ';
    if (i.code == Code::Input)
      s += "in" + std::to_string(i.arg);
    else if (i.code == Code::Constant)
      s += std::to_string(i.value);
    else
      s += names[static_cast<int>(i.code)];
  }
  return s;
}

}  // namespace diffuse::ops
