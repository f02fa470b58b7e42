// UniPCMultistepScheduler: diffusers' UniPC sampler (Zhao et al. 2023), a multistep
// predictor-corrector in the DPM-Solver family. Each step first corrects the previous step's
// prediction with the fresh model output (UniC), then predicts the next sample (UniP); B(h) is
// "bh1" (h) or "bh2" (e^h - 1).
#pragma once

#include <memory>
#include <vector>

#include "schedulers/multistep_common.h"

namespace diffuse {

class UniPCMultistepScheduler final : public MultistepSchedulerBase {
 public:
  /// Reads diffusers' UniPCMultistepScheduler config keys with its defaults; unsupported values
  /// throw ConfigError naming the key.
  explicit UniPCMultistepScheduler(const SchedulerConfig& config);

  std::string_view class_name() const override { return "UniPCMultistepScheduler"; }
  void set_timesteps(int num_inference_steps) override;

 private:
  Tensor solver_step(const Tensor& model_output, const Tensor& sample, RandomSource* rng) override;
  // The solver coefficients shared by predictor and corrector for the step from sigma index
  // `s0` to `t`, using `order` - 1 earlier model outputs (see the .cpp).
  struct Coefficients;
  Coefficients coefficients(int t, int s0, int order) const;
  Tensor predict(const Tensor& sample, int order) const;
  Tensor correct(const Tensor& this_output, int order, const Tensor& sample) const;

  bool predict_x0_ = true;
  bool bh2_ = true;
  std::vector<int> disable_corrector_;
  bool has_sigma_min_ = false, has_sigma_max_ = false;
  double sigma_min_ = 0, sigma_max_ = 0;

  // Per-run state (reset by set_timesteps), beyond the base's.
  int this_order_ = 1;
  Tensor last_sample_;  // the (corrected) sample the last prediction started from
  bool has_last_sample_ = false;
};

std::unique_ptr<Scheduler> make_unipc_multistep(const SchedulerConfig& config);

}  // namespace diffuse
