#include "schedulers/lms_discrete_scheduler.h"

#include <algorithm>

#include "schedulers/quadrature.h"
#include "schedulers/scheduler_registry.h"

namespace diffuse {

namespace {
NoiseSchedule::Options lms_betas() {
  NoiseSchedule::Options o;
  o.reads_rescale_zero_snr = false;
  return o;
}
}  // namespace

LMSDiscreteScheduler::LMSDiscreteScheduler(const SchedulerConfig& c)
    : SigmaScheduler(c, lms_betas(), SigmaScheduleOptions{true, false}) {}

void LMSDiscreteScheduler::set_timesteps(int steps) {
  build_schedule(steps);
  derivatives_.clear();
}

double LMSDiscreteScheduler::lms_coefficient(int order, int t, int current) const {
  // Lagrange basis polynomial for node sigma[t - current] over nodes sigma[t - k], k < order,
  // evaluated as diffusers does: the sigmas are float32 tensors, so every factor (and tau, cast
  // to the tensor's dtype) is float32.
  auto basis = [&](double tau) {
    const float ft = static_cast<float>(tau);
    float prod = 1.0f;
    for (int k = 0; k < order; ++k) {
      if (k == current) continue;
      prod = prod * ((ft - sigma(t - k)) / (sigma(t - current) - sigma(t - k)));
    }
    return double(prod);
  };
  // scipy's quad(epsrel=1e-4) stops after its first 21-point Gauss-Kronrod pass on these cubics;
  // so does ours with the same tolerance, giving the same double result.
  return integrate_adaptive(basis, sigma(t), sigma(t + 1), 1e-4, 1.49e-8);
}

Tensor LMSDiscreteScheduler::step(const Tensor& model_output, double timestep, const Tensor& sample,
                                  RandomSource* /*rng*/) {
  check_step_args(model_output, sample, "LMSDiscreteScheduler::step");
  const int i = step_index(timestep);
  const float s = sigma(i);
  const X0Form x0 = x0_form(s);
  const Expr m = in(0), x = in(1);
  derivatives_.adopt(ops::evaluate((x - x0(m, x)) / s, {model_output, sample}));

  const int order = std::min(i + 1, kOrder);
  // diffusers zips the coefficients with the stored derivatives, newest first; after an img2img
  // start there may be fewer derivatives than the order. Inputs: 0 = sample, 1 + j = derivative j.
  const int used = std::min(order, derivatives_.size());
  std::vector<Tensor> inputs{sample};
  Expr sum = 0.0f;
  for (int j = 0; j < used; ++j) {
    const float c = static_cast<float>(lms_coefficient(order, i, j));
    inputs.push_back(derivatives_[j]);
    sum = j == 0 ? c * in(1) : sum + c * in(1 + j);
  }
  Tensor out = ops::evaluate(in(0) + sum, inputs);
  advance();
  return out;
}

std::unique_ptr<Scheduler> make_lms_discrete(const SchedulerConfig& config) {
  return std::make_unique<LMSDiscreteScheduler>(config);
}

}  // namespace diffuse
