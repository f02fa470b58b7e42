// Scalar, bit-exact versions of the numpy float32 math that diffusers' schedules go through.
//
// diffusers computes several schedule quantities with numpy on float32 arrays (log_sigmas =
// np.log(sigmas), the log-sigma of an interpolated sigma in _sigma_to_t). numpy does not call the C
// library there: on x86 with AVX2/FMA3 or AVX512F it evaluates its own vectorised approximation,
// which is up to ~4 ulp from the correctly rounded result. Fractional timesteps derived from these
// logs (KDPM2's midpoints) move by a float32 ulp when the log does, so matching diffusers'
// timesteps exactly needs the same approximation.
#pragma once

namespace diffuse {

/// np.log on a float32 value, as numpy's AVX2/AVX512F loop computes it (mantissa in
/// (sqrt(1/2), sqrt(2)], a 5/5 rational minimax approximation of log(1 + x), plus e * ln 2).
float numpy_logf(float x);

}  // namespace diffuse
