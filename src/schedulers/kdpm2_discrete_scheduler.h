// KDPM2DiscreteScheduler: diffusers' DPM2 sampler (Karras et al. 2022, Algorithm 2 with the
// midpoint rule in log-sigma). Each step evaluates the model twice, at sigma_i and at the
// geometric mean of sigma_i and sigma_{i+1}, so timesteps() interleaves the two.
#pragma once

#include <memory>

#include "schedulers/kdpm2_common.h"

namespace diffuse {

class KDPM2DiscreteScheduler final : public KDPM2SchedulerBase {
 public:
  /// Reads diffusers' KDPM2DiscreteScheduler config keys with its defaults (beta_start 0.00085,
  /// beta_end 0.012, linear); unsupported values throw ConfigError naming the key.
  explicit KDPM2DiscreteScheduler(const SchedulerConfig& config);

  std::string_view class_name() const override { return "KDPM2DiscreteScheduler"; }

 private:
  void build_interpolated(const std::vector<float>& sigmas,
                          const std::vector<double>& timesteps) override;
  // sigmas_interpol_[k + 1]: entry i is the midpoint between sigma i and the one before it.
  float midpoint_sigma(size_t k) const override { return sigmas_interpol_[k + 1]; }
  // The next sigma.
  float second_order_target(size_t k) const override { return sigmas_f32_[k + 1]; }
};

std::unique_ptr<Scheduler> make_kdpm2_discrete(const SchedulerConfig& config);

}  // namespace diffuse
