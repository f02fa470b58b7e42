// Adaptive Gauss-Kronrod quadrature (the 21-point rule of QUADPACK's qk21, the rule scipy's
// integrate.quad applies first), for the LMS sampler's coefficients.
#pragma once

#include <functional>

namespace diffuse {

/// Integral of f over [a, b] (a > b allowed), bisecting until each piece's Kronrod-Gauss
/// difference is within max(epsabs, epsrel * |integral|). Polynomials up to degree 31 are exact
/// on the first pass.
double integrate_adaptive(const std::function<double(double)>& f, double a, double b,
                          double epsrel = 1e-10, double epsabs = 1e-14);

}  // namespace diffuse
