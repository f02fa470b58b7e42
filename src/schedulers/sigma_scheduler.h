// The common part of the k-diffusion style samplers (Karras et al. 2022) that diffusers runs in
// sigma space: EulerDiscrete, EulerAncestralDiscrete, LMSDiscrete, HeunDiscrete. They share the
// schedule recipe (spaced float timesteps -> interpolated training sigmas, optionally Karras or
// exponential sigmas), input scaling x / sqrt(sigma^2 + 1), the sigma-space add_noise and the
// step-index bookkeeping (begin index, or the timestep looked up on first use).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "schedulers/noise_schedule.h"
#include "schedulers/scheduler.h"
#include "schedulers/scheduler_math.h"

namespace diffuse {

/// Which schedule options a class reads (each diffusers class accepts a different subset).
struct SigmaScheduleOptions {
  bool karras_and_exponential = true;  // use_karras_sigmas, use_exponential_sigmas
  bool euler_extras = false;           // sigma_min/max, interpolation_type, final_sigmas_type,
                                       // timestep_type (EulerDiscreteScheduler only)
};

/// The float timesteps diffusers' sigma schedulers compute for `spacing` (np.float32 values,
/// descending): linspace keeps fractional values, leading adds steps_offset, trailing subtracts 1.
std::vector<double> sigma_timesteps(const std::string& spacing, int num_train_timesteps, int steps,
                                    int steps_offset);

/// Stepping state: the step index starts at the begin index when one was set after
/// set_timesteps() (img2img: set_begin_index(t_start * order()), then add_noise(x0, noise,
/// timesteps()[t_start * order()]) and step through timesteps() from there), else at the position
/// of the first timestep passed to scale_model_input() / step(); each step() advances it by one.
class SigmaScheduler : public Scheduler {
 public:
  double init_noise_sigma() const override;
  Tensor scale_model_input(const Tensor& sample, double timestep) override;
  Tensor add_noise(const Tensor& original, const Tensor& noise, double timestep) const override;
  void set_begin_index(int index) override;

 protected:
  SigmaScheduler(const SchedulerConfig& c, const NoiseSchedule::Options& betas,
                 const SigmaScheduleOptions& options);

  /// Computes timesteps_ and sigmas_ (n timesteps, n + 1 sigmas ending in the final sigma) and
  /// resets the step index, as the classes' set_timesteps do.
  void build_schedule(int steps);
  /// The step index for a call at `timestep`, initialising it on first use (diffusers'
  /// _init_step_index: the begin index if set, else the timestep's position in the schedule).
  int step_index(double timestep);
  void advance() { ++*step_index_; }
  /// sigmas_[i] as float32 (diffusers keeps sigmas as a float32 tensor).
  float sigma(int i) const { return static_cast<float>(sigmas_.at(static_cast<size_t>(i))); }
  /// diffusers' index_for_timestep: the position of `timestep` in timesteps_, the second one when
  /// it occurs twice (so img2img starting mid-schedule does not skip a sigma).
  int index_for_timestep(double timestep) const;
  /// x0 from model output m and sample x at noise level s, as diffusers writes it per
  /// prediction_type: epsilon x - s*m; v_prediction m * (-s / sqrt(s^2 + 1)) + x / (s^2 + 1);
  /// sample m. Coefficients are float32 scalars, computed once per step.
  struct X0Form {
    Prediction p;
    float s, v_m, v_x;
    /// The x0 estimate as an expression of the model output m and the sample x.
    Expr operator()(const Expr& m, const Expr& x) const {
      switch (p) {
        case Prediction::Epsilon:
          return x - s * m;
        case Prediction::VPrediction:
          return m * v_m + x / v_x;
        default:
          return m;
      }
    }
  };
  X0Form x0_form(float s) const;

  NoiseSchedule ns_;
  Prediction prediction_;
  std::string spacing_;
  int steps_offset_;
  std::optional<int> step_index_;
  std::optional<int> begin_;

 private:
  bool karras_ = false, exponential_ = false;
  std::optional<double> sigma_min_, sigma_max_;
  std::string interpolation_ = "linear", final_sigmas_ = "zero", timestep_type_ = "discrete";
};

}  // namespace diffuse
