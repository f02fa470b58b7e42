"""Fits the polynomial of normal_cdf_f32 (src/backend/cpu/vector_math.h), the CPU kernels' GELU.

erfc(t) = exp(-t^2) * tau * P(tau) with tau = 1 / (1 + 0.4 t), t >= 0: P is a degree-8
least-squares fit, weighted for relative error, of erfc(t) e^(t^2) / tau at Chebyshev points of
tau in (0, 1]. Prints P's coefficients (constant first) as float32 literals and the fit's largest
relative error over t in [0, 10]. Needs numpy only; run: python3 tools/math/fit_normal_cdf.py
"""
import math

import numpy as np

P_SCALE, DEGREE = 0.4, 8


def scaled_erfc(t):
    """erfc(t) e^(t^2), by its asymptotic series where exp(t^2) would overflow."""
    if t < 25:
        return math.exp(t * t) * math.erfc(t)
    return (1 - 0.5 / t**2 + 0.75 / t**4 - 1.875 / t**6) / (math.sqrt(math.pi) * t)


def main():
    k = np.arange(1200)
    tau = 0.5 + 0.5 * np.cos((2 * k + 1) * np.pi / 2400)
    tau = tau[tau > 1e-7]
    t = (1 / tau - 1) / P_SCALE
    want = np.array([scaled_erfc(a) for a in t]) / tau
    basis = np.vander(tau, DEGREE + 1, increasing=True)
    weight = 1 / want
    coeffs, *_ = np.linalg.lstsq(basis * weight[:, None], want * weight, rcond=None)
    coeffs = coeffs.astype(np.float32)
    print("P (constant first):", ", ".join(f"{c:.9g}f" for c in coeffs))
    t = np.linspace(0, 10, 40001)
    tau = 1 / (1 + P_SCALE * t)
    got = tau * np.polyval(coeffs[::-1].astype(np.float64), tau)
    ref = np.array([scaled_erfc(a) for a in t])
    print("largest relative error of erfc(t) e^(t^2) over [0, 10]:", np.max(np.abs(got / ref - 1)))


if __name__ == "__main__":
    main()
