// What every diffusers scheduler shares: the training noise schedule (betas -> alphas_cumprod),
// the spacing of inference timesteps, and typed access to config keys.
#pragma once

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace diffuse {

/// Typed, defaulted reads of a scheduler config with errors that name the key.
class SchedulerConfig {
 public:
  explicit SchedulerConfig(nlohmann::json config) : j_(std::move(config)) {}
  double number(const char* key, double fallback) const;
  int integer(const char* key, int fallback) const;
  bool boolean(const char* key, bool fallback) const;
  std::string string(const char* key, const std::string& fallback) const;
  /// Like string(), but the value must be one of `allowed` (ConfigError naming key and value).
  std::string choice(const char* key, const std::string& fallback,
                     std::initializer_list<const char*> allowed) const;
  bool has(const char* key) const;  // present and not null
  const nlohmann::json& json() const { return j_; }

 private:
  nlohmann::json j_;
};

/// The training-time schedule, computed as diffusers does (float32 betas; alphas_cumprod as
/// torch.cumprod computes it). Reads num_train_timesteps, beta_start, beta_end, beta_schedule
/// (linear, scaled_linear, squaredcos_cap_v2), trained_betas and rescale_betas_zero_snr.
struct NoiseSchedule {
  int num_train_timesteps = 1000;
  std::vector<float> betas;
  std::vector<float> alphas;
  std::vector<float> alphas_cumprod;

  /// What differs between diffusers classes: their constructor defaults (Heun, KDPM2 and LCM
  /// default to SD's 0.00085..0.012) and which extra beta schedules / keys they accept.
  struct Options {
    double beta_start = 0.0001;
    double beta_end = 0.02;
    const char* beta_schedule = "linear";
    bool allow_exp = false;              // Heun, KDPM2: betas_for_alpha_bar(alpha_transform "exp")
    bool allow_sigmoid_laplace = false;  // DDPM: "sigmoid" and "laplace"
    bool reads_rescale_zero_snr = true;  // classes without the key ignore it (PNDM, LMS, Heun)
  };
  static NoiseSchedule from_config(const SchedulerConfig& c) { return from_config(c, Options{}); }
  static NoiseSchedule from_config(const SchedulerConfig& c, const Options& o);
};

/// torch.linspace(start, end, n, dtype=float32) on CPU: the step is float32, the second half
/// counts back from `end`, and each value is one fused multiply-add, as ATen's kernel computes it.
std::vector<float> torch_linspace_f32(double start, double end, int n);

/// np.round: round half to even.
inline double np_round(double x) {
  return std::nearbyint(x);
}

/// set_timesteps' contract for every class spacing steps over the training schedule: ConfigError
/// unless 1 <= steps <= num_train_timesteps.
void check_inference_steps(int steps, int num_train_timesteps);

/// Inference timesteps for "linspace", "leading" or "trailing" spacing, descending, as the
/// discrete-time schedulers (DDIM, PNDM, DDPM) compute them: integers, with steps_offset.
/// "trailing" follows np.arange(N, 0, -N/steps), which for some step counts (61, 103, ...) yields
/// one extra entry that rounds to timestep -1; that entry is dropped, so exactly `steps` come back.
std::vector<double> spaced_timesteps(const std::string& spacing, int num_train_timesteps, int steps,
                                     int steps_offset);

/// np.linspace(start, stop, n) in double.
std::vector<double> linspace(double start, double stop, int n);

/// sigma(t) = sqrt((1 - a) / a) for each alphas_cumprod entry (float32, as torch computes it).
std::vector<double> sigmas_from_alphas_cumprod(const std::vector<float>& alphas_cumprod);

/// np.interp(x, xp, fp) with xp ascending.
std::vector<double> interp(const std::vector<double>& x, const std::vector<double>& xp,
                           const std::vector<double>& fp);

/// Karras et al. (2022) sigmas: rho = 7 ramp between sigma_max and sigma_min, n values.
std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int n, double rho = 7.0);

/// The (possibly fractional) training timestep for a sigma, by interpolating log-sigma over the
/// training schedule, as diffusers' `_sigma_to_t`.
double sigma_to_t(double sigma, const std::vector<double>& log_sigmas);

}  // namespace diffuse
