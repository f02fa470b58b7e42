// The scaffolding the DPM-Solver family of multistep samplers (DPMSolverMultistepScheduler,
// UniPCMultistepScheduler) shares in diffusers: integer timesteps spaced over steps + 1 points,
// sigmas interpolated from the training schedule, the (alpha_t, sigma_t, lambda_t) triple in
// float32, the step-index lookup, and MultistepSchedulerBase, the state machine around the
// solver's update (config, history of model outputs, step index, add_noise).
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "diffuse/error.hpp"
#include "schedulers/noise_schedule.h"
#include "schedulers/scheduler.h"
#include "schedulers/scheduler_math.h"

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

/// The integer timesteps of re-spaced (Karras, exponential, Lu) sigmas: each sigma's training
/// position (sigma_to_t), rounded when `round`, else truncated as diffusers' int64 cast does.
std::vector<double> multistep_timesteps_of_sigmas(const std::vector<double>& sigmas,
                                                  const std::vector<double>& log_sigmas,
                                                  bool round);

/// What diffusers' DPMSolverMultistepScheduler and UniPCMultistepScheduler do identically around
/// their solver: the config keys both read, the per-run state (history of converted model outputs,
/// step index, warm-up counter), the step-index protocol of step() and add_noise, and the model
/// output conversion. Subclasses build the schedule and implement the update.
class MultistepSchedulerBase : public Scheduler {
 public:
  /// Checks the arguments, initialises the step index on the first call (the begin index if set,
  /// else the timestep's position), runs the subclass's update, then advances the step index and
  /// the warm-up counter.
  Tensor step(const Tensor& model_output, double timestep, const Tensor& sample,
              RandomSource* rng) final;
  /// alpha_t * original + sigma_t * noise at the timestep's sigma (or the begin index's).
  Tensor add_noise(const Tensor& original, const Tensor& noise, double timestep) const final;
  void set_begin_index(int index) final;

 protected:
  enum class SigmaSpacing { Interpolated, Karras, Exponential, LuLambdas };

  /// Reads the keys both classes share: the noise schedule (rescale_betas_zero_snr), solver_order
  /// (1 to max_order), prediction_type, thresholding, lower_order_final, the sigma spacing flags
  /// (use_karras_sigmas, use_exponential_sigmas; the beta / flow / dynamic-shifting ones are
  /// refused), final_sigmas_type, timestep_spacing and steps_offset. `who` is the class name for
  /// errors (class_name() cannot be called from a base constructor).
  MultistepSchedulerBase(const SchedulerConfig& config, const char* who, int max_order);

  /// ConfigError "<who>: <what>".
  ConfigError unsupported(const std::string& what) const;

  /// The update for step step_index_ (already checked to lie in the schedule).
  virtual Tensor solver_step(const Tensor& model_output, const Tensor& sample,
                             RandomSource* rng) = 0;

  /// Model output -> data (x0) prediction, thresholded, when `data_prediction`; else -> noise
  /// prediction, not thresholded (as diffusers' UniPC; DPM-Solver adds it, see its convert()). At
  /// sigmas_[step_index_].
  Tensor convert_model_output(const Tensor& model_output, const Tensor& sample,
                              bool data_prediction) const;

  /// Installs a new schedule: `timesteps`, float32 `sigmas` plus the final sigma, and resets the
  /// per-run state (history, step index, warm-up counter, begin index).
  void set_schedule(std::vector<double> timesteps, const std::vector<double>& sigmas,
                    float final_sigma);

  /// The training sigmas at integer `timesteps` (np.interp at integer points picks them exactly).
  std::vector<double> train_sigmas_at(const std::vector<double>& timesteps) const;

  const char* who_;
  NoiseSchedule schedule_;
  std::vector<double> train_sigmas_;  // sqrt((1 - a) / a) per training step, float32 values
  int solver_order_ = 2;
  Prediction prediction_ = Prediction::Epsilon;
  X0Clamp threshold_;  // dynamic thresholding of the x0 prediction (never static clipping)
  bool lower_order_final_ = true;
  SigmaSpacing sigma_spacing_ = SigmaSpacing::Interpolated;  // LuLambdas: DPM-Solver only
  bool final_sigma_zero_ = true;
  std::string timestep_spacing_;
  int steps_offset_ = 0;

  // Per-run state (reset by set_schedule).
  bool has_begin_index_ = false;
  int step_index_ = -1;
  int lower_order_nums_ = 0;           // steps taken, up to solver_order_ (lower-order warm-up)
  std::vector<Tensor> model_outputs_;  // solver_order_ slots, oldest first
};

}  // namespace diffuse
