// The scheduler interface: the small protocol every sampler implements, mirroring diffusers'
// SchedulerMixin so pipelines read like their diffusers counterparts.
//
// Usage (text-to-image):
//   s->set_timesteps(steps);
//   x = noise * s->init_noise_sigma();
//   for (double t : s->timesteps()) {
//     eps = unet(s->scale_model_input(x, t), t);
//     x = s->step(eps, t, x, rng);
//   }
// The model is evaluated once per entry of timesteps() (second-order samplers repeat entries).
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "random/random_source.h"

namespace diffuse {

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  /// diffusers class name, e.g. "EulerDiscreteScheduler".
  virtual std::string_view class_name() const = 0;
  /// Computes the inference schedule; throws ConfigError when steps < 1 or above training steps.
  virtual void set_timesteps(int num_inference_steps) = 0;
  /// One entry per model evaluation, in order.
  const std::vector<double>& timesteps() const { return timesteps_; }
  /// Sigmas for sigma-based schedulers (empty for the others), as diffusers' `scheduler.sigmas`.
  const std::vector<double>& sigmas() const { return sigmas_; }
  virtual double init_noise_sigma() const { return 1.0; }
  /// Solver order as diffusers' `scheduler.order` (img2img skips t_start * order entries).
  virtual int order() const { return 1; }
  /// Input scaling before the model (identity for most non-sigma schedulers).
  virtual Tensor scale_model_input(const Tensor& sample, double timestep) { return sample; }
  /// Advances the sample by one entry of timesteps(). `rng` is used by stochastic samplers
  /// (ancestral, SDE, DDIM with eta > 0, DDPM, LCM) and may be null for deterministic ones.
  virtual Tensor step(const Tensor& model_output, double timestep, const Tensor& sample,
                      RandomSource* rng) = 0;
  /// Forward-diffuses `original` to `timestep` (img2img).
  virtual Tensor add_noise(const Tensor& original, const Tensor& noise, double timestep) const = 0;
  /// Start the step counter at timesteps()[index] (img2img), as diffusers' set_begin_index.
  virtual void set_begin_index(int index) { begin_index_ = index; }

 protected:
  std::vector<double> timesteps_;
  std::vector<double> sigmas_;
  int begin_index_ = 0;
};

/// Builds a scheduler from a diffusers scheduler config (`scheduler_config.json` contents; its
/// `_class_name` picks the class unless `class_name` is given). Keys a class does not use are
/// ignored, as diffusers does; unsupported values (e.g. an unknown beta_schedule) throw ConfigError
/// naming the key and value.
std::unique_ptr<Scheduler> make_scheduler(const nlohmann::json& config,
                                          std::string_view class_name = {});

/// A user-facing sampler name ("pndm", "ddim", "euler-a", "dpmpp-2m-karras", ... or a diffusers
/// class name such as "DPMSolverMultistepScheduler") resolved to a class and config overrides
/// applied on top of the model's own scheduler config.
struct SchedulerPreset {
  std::string class_name;
  std::string overrides_json;  // JSON object merged over the model's config
  std::string a1111_name;      // "DPM++ 2M Karras": the Sampler: field A1111 writes in PNG metadata
};
/// Throws ConfigError naming `name` and listing the valid names when it is unknown.
SchedulerPreset scheduler_preset(std::string_view name);
/// All preset names, for help text and errors.
std::vector<std::string> scheduler_preset_names();

}  // namespace diffuse
