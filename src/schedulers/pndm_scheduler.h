// PNDMScheduler (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models on Manifolds"):
// Runge-Kutta warm-up (PRK) then 4th-order linear multistep (PLMS) on DDIM's transfer function.
// With skip_prk_steps (SD 1.x's config) the warm-up is replaced by diffusers' cheaper start, so N
// steps take N + 1 model evaluations (the second timestep is evaluated twice).
#pragma once

#include "schedulers/noise_schedule.h"
#include "schedulers/scheduler.h"
#include "schedulers/scheduler_math.h"

namespace diffuse {

/// Config keys (diffusers defaults): num_train_timesteps 1000, beta_start 0.0001, beta_end 0.02,
/// beta_schedule "linear", trained_betas, skip_prk_steps false, set_alpha_to_one false,
/// prediction_type "epsilon" (or "v_prediction"), timestep_spacing "leading", steps_offset 0.
///
/// State advances with each step() call (diffusers' counter), not by looking the timestep up, so
/// set_begin_index() has no effect: img2img just runs the tail of timesteps() from a fresh
/// set_timesteps(), as diffusers does (PNDM has no set_begin_index there). No random draws.
class PNDMScheduler : public Scheduler {
 public:
  explicit PNDMScheduler(const SchedulerConfig& config);

  std::string_view class_name() const override { return "PNDMScheduler"; }
  void set_timesteps(int num_inference_steps) override;
  Tensor step(const Tensor& model_output, double timestep, const Tensor& sample,
              RandomSource* rng) override;
  Tensor add_noise(const Tensor& original, const Tensor& noise, double timestep) const override;

 private:
  Tensor step_prk(const Tensor& model_output, int timestep, const Tensor& sample);
  Tensor step_plms(const Tensor& model_output, int timestep, const Tensor& sample);
  /// DDIM-style transfer x_t -> x_prev (Eq. 9 of the paper) from inputs[0] (the sample) with the
  /// noise estimate `eps`, an expression over `inputs`.
  Tensor prev_sample(int timestep, int prev_timestep, const Expr& eps,
                     const std::vector<Tensor>& inputs) const;

  NoiseSchedule ns_;
  float final_alpha_cumprod_;
  Prediction prediction_;
  bool skip_prk_;
  std::string spacing_;
  int steps_offset_;

  int num_inference_steps_ = 0;
  int num_prk_ = 0;       // leading PRK entries of timesteps_
  int counter_ = 0;       // step() calls since set_timesteps
  TensorHistory ets_{4};  // past model outputs, newest first
  Tensor cur_sample_;     // sample at the start of the current PRK / first PLMS step
  bool has_cur_sample_ = false;
  Tensor cur_model_output_;  // PRK accumulator
};

}  // namespace diffuse
