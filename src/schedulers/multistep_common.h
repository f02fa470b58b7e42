// The scaffolding the DPM-Solver family of multistep samplers (DPMSolverMultistepScheduler,
// UniPCMultistepScheduler) shares in diffusers: integer timesteps spaced over steps + 1 points,
// sigmas interpolated from the training schedule, the (alpha_t, sigma_t, lambda_t) triple in
// float32, and the step-index lookup.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "schedulers/noise_schedule.h"

namespace diffuse {

/// alpha_t, sigma_t and lambda_t = log(alpha_t) - log(sigma_t) for a k-diffusion sigma
/// (sigma = sigma_t / alpha_t), in float32 because diffusers derives them from its float32 `sigmas`
/// tensor. At sigma = 0 (a "zero" final sigma) lambda is +inf; the solver formulas rely on
/// exp(-inf) = 0 there, as torch does.
struct AlphaSigma {
  float alpha;
  float sigma;
  float lambda;
};
AlphaSigma alpha_sigma_of(float sigma);

/// The integer timesteps of the multistep solvers. Unlike spaced_timesteps(), "linspace" and
/// "leading" space steps + 1 points and drop the last one, and the schedule ends at
/// `last_timestep` (below num_train_timesteps when lambda_min_clipped cuts it). "trailing" may
/// return fewer than `steps` entries when the schedule is cut.
std::vector<double> multistep_timesteps(const std::string& spacing, int last_timestep,
                                        int num_train_timesteps, int steps, int steps_offset);

/// np.log of the float32 training sigmas (numpy's float32 log, see numpy_math.h), as float32
/// values: diffusers' `log_sigmas`.
std::vector<double> log_sigmas_f32(const std::vector<double>& train_sigmas);

/// Sigmas evenly spaced in log between sigma_max and sigma_min (diffusers'
/// use_exponential_sigmas), n values, descending, in double as numpy computes them.
std::vector<double> exponential_sigmas(double sigma_min, double sigma_max, int n);

/// diffusers' index_for_timestep for the multistep solvers: the position of `t` in `timesteps`,
/// the second one when it repeats (so a restarted img2img schedule does not skip a step), the last
/// index when `t` is absent.
int multistep_index_for_timestep(const std::vector<double>& timesteps, double t);

/// Returns `buffer` when it already has `shape`, else a fresh tensor of that shape. The solvers
/// keep their history in such buffers, so steady-state steps allocate only their output.
Tensor& reuse_buffer(Tensor& buffer, const Shape& shape);

}  // namespace diffuse
