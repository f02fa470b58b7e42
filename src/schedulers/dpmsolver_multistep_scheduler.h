// DPMSolverMultistepScheduler: diffusers' DPM-Solver / DPM-Solver++ multistep sampler (Lu et al.
// 2022), the "DPM++ 2M" family: first to third order, data (++) or noise prediction, optional SDE
// variant that injects fresh noise every step, Karras / exponential / Lu-lambda sigma spacing.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "schedulers/multistep_common.h"
#include "schedulers/noise_schedule.h"
#include "schedulers/scheduler.h"
#include "schedulers/scheduler_math.h"

namespace diffuse {

class DPMSolverMultistepScheduler final : public Scheduler {
 public:
  /// Reads diffusers' DPMSolverMultistepScheduler config keys with its defaults; unsupported
  /// values throw ConfigError naming the key.
  explicit DPMSolverMultistepScheduler(const SchedulerConfig& config);

  std::string_view class_name() const override { return "DPMSolverMultistepScheduler"; }
  void set_timesteps(int num_inference_steps) override;
  Tensor step(const Tensor& model_output, double timestep, const Tensor& sample,
              RandomSource* rng) override;
  Tensor add_noise(const Tensor& original, const Tensor& noise, double timestep) const override;
  void set_begin_index(int index) override;

 private:
  enum class Algorithm { DpmSolver, DpmSolverPP, SdeDpmSolver, SdeDpmSolverPP };
  enum class SigmaSpacing { Interpolated, Karras, Exponential, LuLambdas };

  bool data_prediction() const {
    return algorithm_ == Algorithm::DpmSolverPP || algorithm_ == Algorithm::SdeDpmSolverPP;
  }
  bool stochastic() const {
    return algorithm_ == Algorithm::SdeDpmSolver || algorithm_ == Algorithm::SdeDpmSolverPP;
  }
  // Model output -> x0 prediction (++ variants) or noise prediction, written into `out`.
  void convert_model_output(const Tensor& model_output, const Tensor& sample, Tensor& out) const;
  void first_order_update(const Tensor& sample, const float* noise, Tensor& out) const;
  void second_order_update(const Tensor& sample, const float* noise, Tensor& out) const;
  void third_order_update(const Tensor& sample, const float* noise, Tensor& out) const;
  int index_for(double timestep) const;

  NoiseSchedule schedule_;
  std::vector<double> train_sigmas_;  // sqrt((1 - a) / a) per training step, float32 values
  int solver_order_ = 2;
  Prediction prediction_ = Prediction::Epsilon;
  X0Clamp threshold_;  // dynamic thresholding of the x0 prediction (never static clipping)
  Algorithm algorithm_ = Algorithm::DpmSolverPP;
  bool heun_ = false;  // solver_type "heun" (else "midpoint")
  bool lower_order_final_ = true, euler_at_final_ = false;
  SigmaSpacing sigma_spacing_ = SigmaSpacing::Interpolated;
  bool final_sigma_zero_ = true;
  double lambda_min_clipped_ = 0;  // -inf unless configured
  std::string timestep_spacing_;
  int steps_offset_ = 0;
  bool round_sigma_timesteps_ = true;  // false for squaredcos_cap_v2, as diffusers

  // Per-run state (reset by set_timesteps).
  bool has_begin_index_ = false;
  int step_index_ = -1;
  int lower_order_nums_ = 0;
  std::vector<Tensor> model_outputs_;  // oldest first; the last is the current step's
  Tensor noise_;                       // SDE noise buffer, reused across steps
};

std::unique_ptr<Scheduler> make_dpmsolver_multistep(const SchedulerConfig& config);

}  // namespace diffuse
