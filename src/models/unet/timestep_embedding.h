// Sinusoidal timestep embedding, as diffusers' get_timestep_embedding computes it (in float32).
#pragma once

#include <vector>

#include "core/tensor.h"

namespace diffuse::unet {

/// [N, dim] embedding of N (possibly fractional) timesteps: with half = dim / 2,
///   freq[i] = exp(-ln(max_period) * i / (half - freq_shift)),  arg = t * freq[i],
///   row = [sin(arg), cos(arg)], or [cos, sin] when flip_sin_to_cos; zero-padded when dim is odd.
/// Every step is rounded to float32 exactly where torch rounds it, so the table matches diffusers'
/// to the last bit or so (sin/cos of arguments near 1000 are the only libm-dependent part).
Tensor timestep_embedding(const std::vector<double>& timesteps, int dim, bool flip_sin_to_cos,
                          double freq_shift, int max_period = 10000);

}  // namespace diffuse::unet
