#include "schedulers/noise_schedule.h"

#include <algorithm>
#include <cmath>

#include "diffuse/error.hpp"

namespace diffuse {

namespace {
const nlohmann::json* find(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}
ConfigError bad(const char* key, const nlohmann::json& v, const char* want) {
  return ConfigError("scheduler config: '" + std::string(key) + "' = " + v.dump() + " is not " +
                     want);
}
}  // namespace

bool SchedulerConfig::has(const char* key) const {
  return find(j_, key) != nullptr;
}

double SchedulerConfig::number(const char* key, double fallback) const {
  const auto* v = find(j_, key);
  if (!v) return fallback;
  if (!v->is_number()) throw bad(key, *v, "a number");
  return v->get<double>();
}

int SchedulerConfig::integer(const char* key, int fallback) const {
  const auto* v = find(j_, key);
  if (!v) return fallback;
  if (!v->is_number_integer()) throw bad(key, *v, "an integer");
  return v->get<int>();
}

bool SchedulerConfig::boolean(const char* key, bool fallback) const {
  const auto* v = find(j_, key);
  if (!v) return fallback;
  if (!v->is_boolean()) throw bad(key, *v, "true or false");
  return v->get<bool>();
}

std::string SchedulerConfig::string(const char* key, const std::string& fallback) const {
  const auto* v = find(j_, key);
  if (!v) return fallback;
  if (!v->is_string()) throw bad(key, *v, "a string");
  return v->get<std::string>();
}

std::string SchedulerConfig::choice(const char* key, const std::string& fallback,
                                    std::initializer_list<const char*> allowed) const {
  std::string s = string(key, fallback);
  std::string list;
  for (const char* a : allowed) {
    if (s == a) return s;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  throw ConfigError("scheduler config: unsupported " + std::string(key) + " \"" + s +
                    "\" (supported: " + list + ")");
}

std::vector<double> linspace(double start, double stop, int n) {
  std::vector<double> v(static_cast<size_t>(std::max(n, 0)));
  if (n == 1) v[0] = start;
  const double step = n > 1 ? (stop - start) / (n - 1) : 0;
  // numpy computes start + i*step and pins the last value to stop.
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = start + i * step;
  if (n > 1) v.back() = stop;
  return v;
}

std::vector<float> torch_linspace_f32(double start, double end, int n) {
  std::vector<float> v(static_cast<size_t>(std::max(n, 0)));
  if (n == 1) v[0] = static_cast<float>(start);
  if (n <= 1) return v;
  const float f0 = static_cast<float>(start), f1 = static_cast<float>(end);
  const float step = (f1 - f0) / static_cast<float>(n - 1);
  const int half = n / 2;
  // ATen's kernel computes start + step * i (end - step * (n - 1 - i) past halfway); its AVX2 and
  // AVX512 builds fuse each into one FMA, which the golden schedules confirm.
  for (int i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = i < half ? std::fma(step, static_cast<float>(i), f0)
                                         : std::fma(-step, static_cast<float>(n - 1 - i), f1);
  return v;
}

namespace {
// diffusers' betas_for_alpha_bar: betas from a continuous alpha_bar(t), in double, capped at
// max_beta 0.999, then stored as float32.
template <typename F>
std::vector<float> betas_for_alpha_bar(size_t n, F alpha_bar) {
  std::vector<float> b(n);
  for (size_t i = 0; i < n; ++i) {
    const double t1 = double(i) / double(n), t2 = double(i + 1) / double(n);
    b[i] = static_cast<float>(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999));
  }
  return b;
}

// torch.cumprod on CPU accumulates float32 input in double and rounds each output.
std::vector<float> cumprod(const std::vector<float>& a) {
  std::vector<float> out(a.size());
  double acc = 1.0;
  for (size_t i = 0; i < a.size(); ++i) {
    acc *= a[i];
    out[i] = static_cast<float>(acc);
  }
  return out;
}
}  // namespace

NoiseSchedule NoiseSchedule::from_config(const SchedulerConfig& c, const Options& o) {
  NoiseSchedule s;
  s.num_train_timesteps = c.integer("num_train_timesteps", 1000);
  if (s.num_train_timesteps < 2 || s.num_train_timesteps > 100000)
    throw ConfigError("scheduler config: num_train_timesteps " +
                      std::to_string(s.num_train_timesteps) + " out of range");
  const size_t n = static_cast<size_t>(s.num_train_timesteps);
  if (c.has("trained_betas")) {
    const auto& tb = c.json().at("trained_betas");
    if (!tb.is_array() || tb.size() != n)
      throw ConfigError(
          "scheduler config: trained_betas must be a list of num_train_timesteps numbers");
    for (const auto& b : tb) {
      if (!b.is_number()) throw ConfigError("scheduler config: trained_betas holds a non-number");
      s.betas.push_back(b.get<float>());
    }
  } else {
    const double b0 = c.number("beta_start", o.beta_start), b1 = c.number("beta_end", o.beta_end);
    std::string kind = c.string("beta_schedule", o.beta_schedule);
    const bool extra = (o.allow_exp && kind == "exp") ||
                       (o.allow_sigmoid_laplace && (kind == "sigmoid" || kind == "laplace"));
    if (!extra) {
      std::string allowed = "linear, scaled_linear, squaredcos_cap_v2";
      if (o.allow_exp) allowed += ", exp";
      if (o.allow_sigmoid_laplace) allowed += ", sigmoid, laplace";
      if (kind != "linear" && kind != "scaled_linear" && kind != "squaredcos_cap_v2")
        throw ConfigError("scheduler config: unsupported beta_schedule \"" + kind +
                          "\" (supported: " + allowed + ")");
    }
    if (kind == "linear") {
      s.betas = torch_linspace_f32(static_cast<float>(b0), static_cast<float>(b1), int(n));
    } else if (kind == "scaled_linear") {
      // torch.linspace(b0**0.5, b1**0.5, n, dtype=float32) ** 2
      s.betas = torch_linspace_f32(std::sqrt(b0), std::sqrt(b1), int(n));
      for (float& b : s.betas) b = b * b;
    } else if (kind == "squaredcos_cap_v2") {
      // Glide cosine schedule (Nichol & Dhariwal 2021).
      s.betas = betas_for_alpha_bar(n, [](double t) {
        const double c0 = std::cos((t + 0.008) / 1.008 * M_PI / 2);
        return c0 * c0;
      });
    } else if (kind == "exp") {
      s.betas = betas_for_alpha_bar(n, [](double t) { return std::exp(t * -12.0); });
    } else if (kind == "laplace") {
      s.betas = betas_for_alpha_bar(n, [](double t) {
        const double lmb =
            -0.5 * std::copysign(1.0, 0.5 - t) * std::log(1 - 2 * std::fabs(0.5 - t) + 1e-6);
        const double snr = std::exp(lmb);
        return std::sqrt(snr / (1 + snr));
      });
    } else {  // sigmoid: torch.sigmoid(torch.linspace(-6, 6, n)) * (b1 - b0) + b0, float32
      s.betas = torch_linspace_f32(-6, 6, int(n));
      const float scale = static_cast<float>(b1 - b0), off = static_cast<float>(b0);
      for (float& b : s.betas) b = 1.0f / (1.0f + std::exp(-b)) * scale + off;
    }
  }
  if (o.reads_rescale_zero_snr && c.boolean("rescale_betas_zero_snr", false)) {
    // Lin et al. 2023, Algorithm 1: shift and scale sqrt(alphas_cumprod) so the last step has
    // zero SNR, then recover betas (float32 throughout, in diffusers' operation order).
    std::vector<float> a(n);
    for (size_t i = 0; i < n; ++i) a[i] = 1.0f - s.betas[i];
    std::vector<float> sq = cumprod(a);
    for (float& v : sq) v = std::sqrt(v);
    const float a0 = sq[0], at = sq[n - 1];
    const float scale = a0 / (a0 - at);
    for (float& v : sq) v = (v - at) * scale;
    for (size_t i = 0; i < n; ++i) {
      const float bar = sq[i] * sq[i], prev = i ? sq[i - 1] * sq[i - 1] : 0.0f;
      s.betas[i] = 1.0f - (i == 0 ? bar : bar / prev);
    }
  }
  s.alphas.resize(n);
  for (size_t i = 0; i < n; ++i) s.alphas[i] = 1.0f - s.betas[i];
  s.alphas_cumprod = cumprod(s.alphas);
  return s;
}

void check_inference_steps(int steps, int num_train_timesteps) {
  if (steps < 1) throw ConfigError("steps must be at least 1 (got " + std::to_string(steps) + ")");
  if (steps > num_train_timesteps)
    throw ConfigError("steps " + std::to_string(steps) + " exceeds the scheduler's " +
                      std::to_string(num_train_timesteps) + " training timesteps");
}

std::vector<double> spaced_timesteps(const std::string& spacing, int num_train_timesteps, int steps,
                                     int steps_offset) {
  check_inference_steps(steps, num_train_timesteps);
  std::vector<double> t(static_cast<size_t>(steps));
  if (spacing == "linspace") {
    // np.linspace(0, N - 1, steps).round()[::-1]; np.round rounds half to even.
    auto l = linspace(0, num_train_timesteps - 1, steps);
    for (int i = 0; i < steps; ++i)
      t[static_cast<size_t>(i)] = np_round(l[static_cast<size_t>(steps - 1 - i)]);
  } else if (spacing == "leading") {
    const int ratio = num_train_timesteps / steps;
    for (int i = 0; i < steps; ++i)
      t[static_cast<size_t>(i)] = double((steps - 1 - i) * ratio + steps_offset);
  } else if (spacing == "trailing") {
    // np.round(np.arange(N, 0, -N / steps)) - 1. numpy fills arange as start + i * delta with
    // delta = (start + step) - start.
    const double start = num_train_timesteps, step = -double(num_train_timesteps) / steps;
    const double delta = (start + step) - start;
    for (int i = 0; i < steps; ++i) t[static_cast<size_t>(i)] = np_round(start + i * delta) - 1;
  } else {
    throw ConfigError("scheduler config: unsupported timestep_spacing \"" + spacing +
                      "\" (supported: linspace, leading, trailing)");
  }
  return t;
}

std::vector<double> sigmas_from_alphas_cumprod(const std::vector<float>& alphas_cumprod) {
  std::vector<double> s(alphas_cumprod.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const float a = alphas_cumprod[i];
    s[i] = static_cast<double>(std::sqrt((1.0f - a) / a));
  }
  return s;
}

std::vector<double> interp(const std::vector<double>& x, const std::vector<double>& xp,
                           const std::vector<double>& fp) {
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    if (v <= xp.front()) {
      out[i] = fp.front();
    } else if (v >= xp.back()) {
      out[i] = fp.back();
    } else {
      // xp[j] <= v < xp[j + 1]; numpy computes slope * (v - xp[j]) + fp[j] in this order.
      const size_t j =
          static_cast<size_t>(std::upper_bound(xp.begin(), xp.end(), v) - xp.begin()) - 1;
      if (xp[j] == v) {
        out[i] = fp[j];
      } else {
        const double slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
        out[i] = slope * (v - xp[j]) + fp[j];
      }
    }
  }
  return out;
}

std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int n, double rho) {
  const auto ramp = linspace(0, 1, n);
  const double min_inv = std::pow(sigma_min, 1 / rho), max_inv = std::pow(sigma_max, 1 / rho);
  std::vector<double> s(static_cast<size_t>(n));
  for (size_t i = 0; i < s.size(); ++i)
    s[i] = std::pow(max_inv + ramp[i] * (min_inv - max_inv), rho);
  return s;
}

double sigma_to_t(double sigma, const std::vector<double>& log_sigmas) {
  // log_sigmas ascend with t; find the bracketing pair as diffusers does.
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  const int n = static_cast<int>(log_sigmas.size());
  int low = 0;
  for (int i = 0; i < n; ++i)
    if (log_sigma - log_sigmas[static_cast<size_t>(i)] >= 0) low = i;
  low = std::min(low, n - 2);
  const int high = low + 1;
  const double lo = log_sigmas[static_cast<size_t>(low)],
               hi = log_sigmas[static_cast<size_t>(high)];
  // numpy keeps log_sigmas float32, so low - high is a float32 subtraction (inexact when the pair
  // straddles sigma = 1); the rest is float64.
  double w = (lo - log_sigma) / static_cast<float>(lo - hi);
  w = std::clamp(w, 0.0, 1.0);
  return (1 - w) * low + w * high;
}

}  // namespace diffuse
