// KDPM2AncestralDiscreteScheduler: diffusers' "DPM2 a" sampler, the ancestral variant of DPM2.
// Each step evaluates the model at sigma_i and at the log-sigma midpoint towards sigma_down, lands
// on sigma_down, then adds fresh noise of scale sigma_up (sigma_down^2 + sigma_up^2 =
// sigma_{i+1}^2); timesteps() interleaves the two evaluations.
#pragma once

#include <memory>

#include "schedulers/kdpm2_common.h"

namespace diffuse {

class KDPM2AncestralDiscreteScheduler final : public KDPM2SchedulerBase {
 public:
  /// Reads diffusers' KDPM2AncestralDiscreteScheduler config keys with its defaults (beta_start
  /// 0.00085, beta_end 0.012, linear); unsupported values throw ConfigError naming the key.
  explicit KDPM2AncestralDiscreteScheduler(const SchedulerConfig& config);

  /// step() needs `rng` (the noise of the second evaluation of every step).
  std::string_view class_name() const override { return "KDPM2AncestralDiscreteScheduler"; }

 private:
  void build_interpolated(const std::vector<float>& sigmas,
                          const std::vector<double>& timesteps) override;
  // Entry i of sigmas_interpol_ is the midpoint between sigma i and its sigma_down.
  float midpoint_sigma(size_t k) const override { return sigmas_interpol_[k]; }
  float second_order_target(size_t k) const override { return sigmas_down_[k]; }
  // Adds fresh noise of scale sigma_up, bringing the sample from sigma_down up to sigma_{k+1}.
  void after_second_order(size_t k, RandomSource* rng, Tensor& out) override;

  std::vector<float> sigmas_up_, sigmas_down_;  // per evaluation, layout as sigmas_
};

std::unique_ptr<Scheduler> make_kdpm2_ancestral_discrete(const SchedulerConfig& config);

}  // namespace diffuse
