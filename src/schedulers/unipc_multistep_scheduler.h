// UniPCMultistepScheduler: diffusers' UniPC sampler (Zhao et al. 2023), a multistep
// predictor-corrector in the DPM-Solver family. Each step first corrects the previous step's
// prediction with the fresh model output (UniC), then predicts the next sample (UniP); B(h) is
// "bh1" (h) or "bh2" (e^h - 1).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "schedulers/multistep_common.h"
#include "schedulers/noise_schedule.h"
#include "schedulers/scheduler.h"
#include "schedulers/scheduler_math.h"

namespace diffuse {

class UniPCMultistepScheduler final : public Scheduler {
 public:
  /// Reads diffusers' UniPCMultistepScheduler config keys with its defaults; unsupported values
  /// throw ConfigError naming the key.
  explicit UniPCMultistepScheduler(const SchedulerConfig& config);

  std::string_view class_name() const override { return "UniPCMultistepScheduler"; }
  void set_timesteps(int num_inference_steps) override;
  Tensor step(const Tensor& model_output, double timestep, const Tensor& sample,
              RandomSource* rng) override;
  Tensor add_noise(const Tensor& original, const Tensor& noise, double timestep) const override;
  void set_begin_index(int index) override;

 private:
  enum class SigmaSpacing { Interpolated, Karras, Exponential };

  void convert_model_output(const Tensor& model_output, const Tensor& sample, Tensor& out) const;
  // The solver coefficients shared by predictor and corrector for the step from sigma index
  // `s0` to `t`, using `order` - 1 earlier model outputs (see the .cpp).
  struct Coefficients;
  Coefficients coefficients(int t, int s0, int order) const;
  void predict(const Tensor& sample, int order, Tensor& out) const;
  void correct(const Tensor& this_output, int order, Tensor& sample) const;

  NoiseSchedule schedule_;
  std::vector<double> train_sigmas_;  // sqrt((1 - a) / a) per training step, float32 values
  int solver_order_ = 2;
  Prediction prediction_ = Prediction::Epsilon;
  X0Clamp threshold_;  // dynamic thresholding of the x0 prediction
  bool predict_x0_ = true;
  bool bh2_ = true;
  bool lower_order_final_ = true;
  std::vector<int> disable_corrector_;
  SigmaSpacing sigma_spacing_ = SigmaSpacing::Interpolated;
  bool has_sigma_min_ = false, has_sigma_max_ = false;
  double sigma_min_ = 0, sigma_max_ = 0;
  bool final_sigma_zero_ = true;
  std::string timestep_spacing_;
  int steps_offset_ = 0;

  // Per-run state (reset by set_timesteps).
  bool has_begin_index_ = false;
  int step_index_ = -1;
  int lower_order_nums_ = 0;
  int this_order_ = 1;
  std::vector<Tensor> model_outputs_;  // oldest first; the last is the latest converted output
  Tensor spare_;                       // buffer the next converted output is written into
  Tensor last_sample_;                 // the (corrected) sample the last prediction started from
  bool has_last_sample_ = false;
};

std::unique_ptr<Scheduler> make_unipc_multistep(const SchedulerConfig& config);

}  // namespace diffuse
