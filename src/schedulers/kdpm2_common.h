// What diffusers' two KDPM2 schedulers (KDPM2DiscreteScheduler, KDPM2AncestralDiscreteScheduler,
// Karras et al. 2022's "DPM2" samplers) share: the config they read, the k-diffusion sigma
// schedule both interleave with midpoint ("interpolated") sigmas, the two-evaluations-per-step
// state machine with its updates, input scaling and add_noise. The subclasses define where the
// midpoints lie and where the second evaluation lands (the ancestral one then adds noise).
#pragma once

#include <string>
#include <vector>

#include "schedulers/noise_schedule.h"
#include "schedulers/scheduler.h"
#include "schedulers/scheduler_math.h"

namespace diffuse {

/// The training-timestep position of `sigma`, as diffusers' `_sigma_to_t` evaluates it when
/// handed torch float32 tensors (KDPM2's interpolated sigmas): every operation in float32.
float sigma_to_t_f32(float sigma, const std::vector<float>& log_sigmas);

class KDPM2SchedulerBase : public Scheduler {
 public:
  void set_timesteps(int num_inference_steps) override;
  double init_noise_sigma() const override { return init_noise_sigma_; }
  int order() const override { return 2; }
  Tensor scale_model_input(const Tensor& sample, double timestep) override;
  /// First evaluation of step k (at sigma_k): Euler from sigma_k to the midpoint, saving the
  /// sample. Second (at the midpoint): the derivative there carries the saved sample from sigma_k
  /// to second_order_target(k), then after_second_order() runs.
  Tensor step(const Tensor& model_output, double timestep, const Tensor& sample,
              RandomSource* rng) final;
  Tensor add_noise(const Tensor& original, const Tensor& noise, double timestep) const override;
  void set_begin_index(int index) override;

 protected:
  /// `who` is the class name used in error messages.
  KDPM2SchedulerBase(const SchedulerConfig& config, const char* who);

  /// From the base sigmas s_0 > ... > s_{N-1} > s_N = 0 and base timesteps t_0..t_{N-1}, the
  /// subclass sets sigmas_interpol_ (layout as sigmas_) and the interleaved timesteps_.
  virtual void build_interpolated(const std::vector<float>& sigmas,
                                  const std::vector<double>& timesteps) = 0;
  /// The midpoint sigma of the step whose first evaluation is entry `k` of sigmas_ (the sigma the
  /// second evaluation's model input is scaled by).
  virtual float midpoint_sigma(size_t k) const = 0;
  /// The sigma the second evaluation of step k lands on.
  virtual float second_order_target(size_t k) const = 0;
  /// Runs after the second evaluation's update of step k, on its result `out`.
  virtual void after_second_order(size_t k, RandomSource* rng, Tensor& out) {}

  /// Repeats the inner entries: [x0, x1, x1, ..., xN, xN, xN], diffusers' layout of per-evaluation
  /// sigmas.
  static std::vector<float> interleave(const std::vector<float>& x);

  const char* who_;
  std::vector<float> log_sigmas_;  // float32 log of the training sigmas
  std::vector<float> sigmas_f32_;  // the per-evaluation sigmas (sigmas_ as float32)
  std::vector<float> sigmas_interpol_;

 private:
  /// Initialises the step index on the first call after set_timesteps (diffusers'
  /// _init_step_index).
  void init_step_index(double timestep);
  int index_for_timestep(double timestep) const;
  /// pred_original_sample for the model output at sigma `sigma_input`.
  Tensor predict_x0(const Tensor& model_output, const Tensor& sample, float sigma_input) const;

  int step_index_ = -1;
  bool first_order_ = true;  // diffusers' state_in_first_order (no sample saved)
  Tensor saved_sample_;      // the sample the current step started from

  std::vector<float> alphas_cumprod_;
  Prediction prediction_ = Prediction::Epsilon;
  std::string timestep_spacing_;
  int steps_offset_ = 0;
  bool karras_ = false, exponential_ = false;
  bool has_begin_index_ = false;
  double init_noise_sigma_ = 1.0;
};

}  // namespace diffuse
