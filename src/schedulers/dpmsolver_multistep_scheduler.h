// DPMSolverMultistepScheduler: diffusers' DPM-Solver / DPM-Solver++ multistep sampler (Lu et al.
// 2022), the "DPM++ 2M" family: first to third order, data (++) or noise prediction, optional SDE
// variant that injects fresh noise every step, Karras / exponential / Lu-lambda sigma spacing.
#pragma once

#include <memory>

#include "schedulers/multistep_common.h"

namespace diffuse {

class DPMSolverMultistepScheduler final : public MultistepSchedulerBase {
 public:
  /// Reads diffusers' DPMSolverMultistepScheduler config keys with its defaults; unsupported
  /// values throw ConfigError naming the key.
  explicit DPMSolverMultistepScheduler(const SchedulerConfig& config);

  std::string_view class_name() const override { return "DPMSolverMultistepScheduler"; }
  void set_timesteps(int num_inference_steps) override;

 private:
  enum class Algorithm { DpmSolver, DpmSolverPP, SdeDpmSolver, SdeDpmSolverPP };

  bool data_prediction() const {
    return algorithm_ == Algorithm::DpmSolverPP || algorithm_ == Algorithm::SdeDpmSolverPP;
  }
  bool stochastic() const {
    return algorithm_ == Algorithm::SdeDpmSolver || algorithm_ == Algorithm::SdeDpmSolverPP;
  }
  Tensor solver_step(const Tensor& model_output, const Tensor& sample, RandomSource* rng) override;
  // Model output -> x0 prediction (++ variants) or noise prediction, written into `out`.
  Tensor convert(const Tensor& model_output, const Tensor& sample) const;
  // `noise` is empty unless the algorithm is stochastic.
  Tensor first_order_update(const Tensor& sample, const Tensor& noise) const;
  Tensor second_order_update(const Tensor& sample, const Tensor& noise) const;
  Tensor third_order_update(const Tensor& sample, const Tensor& noise) const;

  Algorithm algorithm_ = Algorithm::DpmSolverPP;
  bool heun_ = false;  // solver_type "heun" (else "midpoint")
  bool euler_at_final_ = false;
  double lambda_min_clipped_ = 0;      // -inf unless configured
  bool round_sigma_timesteps_ = true;  // false for squaredcos_cap_v2, as diffusers
};

std::unique_ptr<Scheduler> make_dpmsolver_multistep(const SchedulerConfig& config);

}  // namespace diffuse
