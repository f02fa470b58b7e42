// Small pieces the scheduler classes share: argument checks, the model-output parameterisations,
// the forward-diffusion formulas behind add_noise, dynamic thresholding, and a fixed-capacity
// history of past tensors (multistep methods keep the last few model outputs).
//
// Element-wise work is done in float32, in the operation order torch uses for the corresponding
// diffusers expression, so results agree with diffusers to a few ulps.
#pragma once

#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/tensor.h"
#include "random/random_source.h"
#include "schedulers/noise_schedule.h"

namespace diffuse {

// Update formulas are ops::evaluate expressions over the step's tensors (backend/expr.h).
using ops::Expr;
using ops::expr::in;

/// How the model output is parameterised (diffusers' `prediction_type`).
enum class Prediction { Epsilon, Sample, VPrediction };

/// Reads prediction_type; `allowed` lists the values the class accepts ("original_sample" is
/// read as Sample, as diffusers' Euler does).
Prediction read_prediction(const SchedulerConfig& c, std::initializer_list<const char*> allowed);

/// The model's estimate of the clean sample x0 from its output, for a step at alpha_cumprod
/// a_t given sa = sqrt(a_t) and sb = sqrt(1 - a_t) (float32, in diffusers' operation order).
Tensor predict_original_sample(Prediction prediction, const Tensor& model_output,
                               const Tensor& sample, float sa, float sb);

/// Checks that model_output and sample are contiguous F32 of the same shape (ShapeError naming
/// `who` otherwise).
void check_step_args(const Tensor& model_output, const Tensor& sample, const char* who);

/// The training-timestep index of a discrete timestep: an integer in [0, N) (ConfigError naming
/// `who` otherwise).
int train_index(double timestep, int num_train_timesteps, const char* who);

/// sqrt(a) * original + sqrt(1 - a) * noise, for the alphas_cumprod entry `a` (float32).
Tensor add_noise_alpha(float alpha_cumprod, const Tensor& original, const Tensor& noise);
/// original + noise * sigma (float32), the sigma-space forward process.
Tensor add_noise_sigma(float sigma, const Tensor& original, const Tensor& noise);
/// Standard normal noise shaped like `like`, on its device: drawn on the host by `rng` (which
/// fixes the stream every backend reproduces), then moved (ConfigError naming `who` when rng is
/// null).
Tensor draw_noise(RandomSource* rng, const Tensor& like, const char* who);

/// Static clipping / dynamic thresholding of a predicted x0, in place, from the class's config
/// (`thresholding`, `dynamic_thresholding_ratio`, `sample_max_value`, `clip_sample`,
/// `clip_sample_range`), as diffusers' DDIM/DDPM/LCM apply it.
struct X0Clamp {
  bool thresholding = false;
  double dynamic_thresholding_ratio = 0.995;
  double sample_max_value = 1.0;
  bool clip_sample = false;
  double clip_sample_range = 1.0;

  static X0Clamp from_config(const SchedulerConfig& c, bool clip_sample_default);
  /// x0 is [batch, ...]; thresholding works per batch item (Saharia et al. 2022, "Imagen").
  void apply(Tensor& x0) const;
};

/// The last `capacity` tensors pushed, newest first; storage is reused, so a steady-state push
/// copies but does not allocate.
class TensorHistory {
 public:
  explicit TensorHistory(int capacity) : capacity_(capacity) {}
  void clear() { count_ = 0; }
  int size() const { return count_; }
  /// Copies `t` in as the newest entry (dropping the oldest when full).
  void push(const Tensor& t);
  /// Stores `t` itself (no copy) as the newest entry: for tensors nobody else writes to.
  void adopt(Tensor t);
  /// i = 0 is the newest.
  const Tensor& operator[](int i) const;

 private:
  int capacity_;
  int count_ = 0;
  int head_ = 0;  // slot of the newest entry
  std::vector<Tensor> slots_;
};

}  // namespace diffuse
