#include "schedulers/quadrature.h"

#include <cmath>
#include <vector>

namespace diffuse {

namespace {

// Kronrod abscissae on [-1, 1] (non-negative half, descending to 0) and weights; the Gauss
// 10-point rule uses the odd-indexed abscissae with weights kGauss. Values from QUADPACK qk21.
constexpr double kX[11] = {0.995657163025808080735527280689003,
                           0.973906528517171720077964012084452,
                           0.930157491355708226001207180059508,
                           0.865063366688984510732096688423493,
                           0.780817726586416897063717578345042,
                           0.679409568299024406234327365114874,
                           0.562757134668604683339000099272694,
                           0.433395394129247190799265943165784,
                           0.294392862701460198131126603103866,
                           0.148874338981631210884826001129720,
                           0.0};
constexpr double kKronrod[11] = {
    0.011694638867371874278064396062192, 0.032558162307964727478818972459390,
    0.054755896574351996031381300244580, 0.075039674810919952767043140916190,
    0.093125454583697605535065465083366, 0.109387158802297641899210590325805,
    0.123491976262065851077723271696591, 0.134709217311473325928054001771707,
    0.142775938577060080797094273138717, 0.147739104901338491374841515972068,
    0.149445554002916905664936468389821};
constexpr double kGauss[5] = {
    0.066671344308688137593568809893332, 0.149451349150580593145776339657697,
    0.219086362515982043995534934228163, 0.269266719309996355091226921569469,
    0.295524224714752870173892994651338};

// One 21-point Kronrod estimate over [a, b] and its difference from the embedded Gauss rule.
void gk21(const std::function<double(double)>& f, double a, double b, double& kronrod,
          double& err) {
  const double c = 0.5 * (a + b), h = 0.5 * (b - a);
  const double fc = f(c);
  double k = kKronrod[10] * fc, g = 0;
  for (int i = 0; i < 10; ++i) {
    const double fs = f(c - h * kX[i]) + f(c + h * kX[i]);
    k += kKronrod[i] * fs;
    if (i % 2 == 1) g += kGauss[i / 2] * fs;
  }
  kronrod = k * h;
  err = std::fabs((k - g) * h);
}

}  // namespace

double integrate_adaptive(const std::function<double(double)>& f, double a, double b, double epsrel,
                          double epsabs) {
  if (a == b) return 0;
  // QUADPACK qag's strategy: keep bisecting the piece with the largest error estimate until the
  // summed error is within tolerance (or 200 pieces, far more than smooth integrands need).
  struct Piece {
    double a, b, value, err;
  };
  std::vector<Piece> pieces(1, Piece{a, b, 0, 0});
  gk21(f, a, b, pieces[0].value, pieces[0].err);
  for (int iter = 0; iter < 200; ++iter) {
    double total = 0, total_err = 0;
    size_t worst = 0;
    for (size_t i = 0; i < pieces.size(); ++i) {
      total += pieces[i].value;
      total_err += pieces[i].err;
      if (pieces[i].err > pieces[worst].err) worst = i;
    }
    if (total_err <= std::fmax(epsabs, epsrel * std::fabs(total))) break;
    const Piece p = pieces[worst];
    const double m = 0.5 * (p.a + p.b);
    Piece left{p.a, m, 0, 0}, right{m, p.b, 0, 0};
    gk21(f, left.a, left.b, left.value, left.err);
    gk21(f, right.a, right.b, right.value, right.err);
    pieces[worst] = left;
    pieces.push_back(right);
  }
  double total = 0;
  for (const Piece& p : pieces) total += p.value;
  return total;
}

}  // namespace diffuse
