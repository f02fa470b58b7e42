// Scheduler behaviour beyond the golden rollouts: spacing corner cases, the PNDM Runge-Kutta
// path, img2img bookkeeping (set_begin_index / add_noise), the LMS quadrature, argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "diffuse/error.hpp"
#include "random/random_source.h"
#include "schedulers/lms_discrete_scheduler.h"
#include "schedulers/quadrature.h"
#include "schedulers/scheduler.h"

namespace diffuse::test {
namespace {

nlohmann::json sd15(nlohmann::json overrides = nlohmann::json::object()) {
  nlohmann::json c = {{"beta_end", 0.012},         {"beta_schedule", "scaled_linear"},
                      {"beta_start", 0.00085},     {"num_train_timesteps", 1000},
                      {"set_alpha_to_one", false}, {"skip_prk_steps", true},
                      {"steps_offset", 1},         {"clip_sample", false}};
  c.update(overrides);
  return c;
}

Tensor filled(const Shape& shape, float v) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = v;
  return t;
}

// Runs the fake model of the golden cases through a whole schedule; returns the final sample.
Tensor rollout(Scheduler& s, RandomSource* rng) {
  Tensor x = filled({1, 4, 2, 2}, s.init_noise_sigma());
  for (size_t i = 0; i < s.timesteps().size(); ++i) {
    const double t = s.timesteps()[i];
    Tensor xin = s.scale_model_input(x, t);
    Tensor eps = Tensor::empty(x.shape());
    for (int64_t k = 0; k < x.numel(); ++k)
      eps.f32()[k] = 0.5f * xin.f32()[k] + static_cast<float>(0.3 * std::sin(t / 100)) * 0.1f * k;
    x = s.step(eps, t, x, rng);
  }
  return x;
}

}  // namespace

TEST(scheduler_spacing, linspace_rounds_half_to_even_like_numpy) {
  // np.linspace(0, 999, 7) = 0, 166.5, 333, 499.5, 666, 832.5, 999; np.round: 166, 500, 832.
  auto s = make_scheduler(sd15({{"timestep_spacing", "linspace"}}), "DDIMScheduler");
  s->set_timesteps(7);
  EXPECT_EQ(s->timesteps(), (std::vector<double>{999, 832, 666, 500, 333, 166, 0}));
}

TEST(scheduler_spacing, trailing_gives_exactly_the_requested_steps) {
  // np.arange(1000, 0, -1000/61) has 62 entries (the last rounds to timestep -1); we keep 61.
  for (const char* cls : {"DDIMScheduler", "EulerDiscreteScheduler"}) {
    auto s = make_scheduler(sd15({{"timestep_spacing", "trailing"}}), cls);
    s->set_timesteps(61);
    ASSERT_EQ(s->timesteps().size(), 61u) << cls;
    EXPECT_EQ(s->timesteps().front(), 999) << cls;
    EXPECT_GE(s->timesteps().back(), 0) << cls;
  }
}

TEST(pndm_scheduler, runge_kutta_warmup_path) {
  auto s = make_scheduler(sd15({{"skip_prk_steps", false}}), "PNDMScheduler");
  s->set_timesteps(10);
  // 12 PRK evaluations over the 4 highest points (t, t - h, t - h, t - 2h; h = 50) then PLMS on
  // the remaining 7: with leading spacing + offset 1 the points are 901, 801, ..., 1.
  const std::vector<double> expect = {901, 851, 851, 801, 801, 751, 751, 701, 701, 651,
                                      651, 601, 601, 501, 401, 301, 201, 101, 1};
  EXPECT_EQ(s->timesteps(), expect);
  Tensor x = rollout(*s, nullptr);
  for (int64_t k = 0; k < x.numel(); ++k) ASSERT_TRUE(std::isfinite(x.f32()[k]));
  auto short_run = make_scheduler(sd15({{"skip_prk_steps", false}}), "PNDMScheduler");
  EXPECT_THROW(short_run->set_timesteps(3), ConfigError);
}

TEST(pndm_scheduler, skip_prk_evaluates_n_plus_one_times) {
  auto s = make_scheduler(sd15(), "PNDMScheduler");
  for (int n : {1, 2, 3, 20, 50}) {
    s->set_timesteps(n);
    EXPECT_EQ(s->timesteps().size(), static_cast<size_t>(n == 1 ? 1 : n + 1)) << n;
    Tensor x = rollout(*s, nullptr);
    EXPECT_TRUE(std::isfinite(x.f32()[0])) << n;
  }
}

TEST(heun_scheduler, two_evaluations_per_step) {
  auto s = make_scheduler(sd15(), "HeunDiscreteScheduler");
  EXPECT_EQ(s->order(), 2);
  s->set_timesteps(10);
  EXPECT_EQ(s->timesteps().size(), 19u);
  EXPECT_EQ(s->sigmas().size(), 20u);
  EXPECT_EQ(s->timesteps()[1], s->timesteps()[2]);
  EXPECT_EQ(s->sigmas().back(), 0.0);
}

TEST(sigma_scheduler, img2img_begin_index_and_add_noise) {
  for (const char* cls : {"EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
                          "LMSDiscreteScheduler", "HeunDiscreteScheduler"}) {
    auto s = make_scheduler(sd15(), cls);
    s->set_timesteps(20);
    const Tensor zero = filled({1, 4, 2, 2}, 0), one = filled({1, 4, 2, 2}, 1);
    // Without a begin index add_noise looks the timestep up: x + noise * sigma(t).
    const int i = 7 * s->order();
    Tensor noisy = s->add_noise(zero, one, s->timesteps()[static_cast<size_t>(i)]);
    EXPECT_EQ(noisy.f32()[0], static_cast<float>(s->sigmas()[static_cast<size_t>(i)])) << cls;
    // With one (what img2img pipelines set: t_start * order) it uses that index.
    s->set_begin_index(i);
    noisy = s->add_noise(zero, one, 123.0);
    EXPECT_EQ(noisy.f32()[0], static_cast<float>(s->sigmas()[static_cast<size_t>(i)])) << cls;
    // The first step then starts at that index whatever timestep value is passed.
    auto rng = make_random_source("torch", 0);
    Tensor xin = s->scale_model_input(one, s->timesteps()[static_cast<size_t>(i)]);
    const float sig = static_cast<float>(s->sigmas()[static_cast<size_t>(i)]);
    EXPECT_FLOAT_EQ(xin.f32()[0], 1.0f / std::sqrt(sig * sig + 1)) << cls;
    EXPECT_THROW(s->set_begin_index(1000), ConfigError);
  }
}

TEST(alpha_scheduler, add_noise_is_the_forward_process) {
  for (const char* cls : {"PNDMScheduler", "DDIMScheduler", "DDPMScheduler", "LCMScheduler"}) {
    auto s = make_scheduler(sd15(), cls);
    s->set_timesteps(10);
    const Tensor x = filled({1, 4, 2, 2}, 1), n = filled({1, 4, 2, 2}, 2);
    Tensor noisy = s->add_noise(x, n, 0);
    // alphas_cumprod[0] = 1 - beta_0 = 1 - 0.00085.
    const float a = 1.0f - 0.00085f;
    EXPECT_NEAR(noisy.f32()[0], std::sqrt(a) + 2 * std::sqrt(1 - a), 1e-6) << cls;
    EXPECT_THROW(s->add_noise(x, n, 1000), ConfigError) << cls;
    EXPECT_THROW(s->add_noise(x, n, 10.5), ConfigError) << cls;
  }
}

TEST(scheduler_step, checks_its_arguments) {
  auto ddim = make_scheduler(sd15({{"eta", 1.0}}), "DDIMScheduler");
  ddim->set_timesteps(10);
  const Tensor a = filled({1, 4, 2, 2}, 0.1f), b = filled({1, 4, 2, 3}, 0.1f);
  EXPECT_THROW(ddim->step(a, ddim->timesteps()[0], a, nullptr), ConfigError);  // eta > 0, no rng
  EXPECT_THROW(ddim->step(a, ddim->timesteps()[0], b, nullptr), ShapeError);
  auto euler = make_scheduler(sd15(), "EulerDiscreteScheduler");
  euler->set_timesteps(2);
  EXPECT_THROW(euler->step(a, 123.0, a, nullptr), ConfigError);  // not a schedule timestep
  euler->set_timesteps(2);
  Tensor x = euler->step(a, euler->timesteps()[0], a, nullptr);
  x = euler->step(a, euler->timesteps()[1], x, nullptr);
  EXPECT_THROW(euler->step(a, euler->timesteps()[1], x, nullptr), ConfigError);  // past the end
}

TEST(scheduler_sigmas, karras_and_exponential_options) {
  for (const char* cls :
       {"EulerDiscreteScheduler", "LMSDiscreteScheduler", "HeunDiscreteScheduler"}) {
    auto s = make_scheduler(sd15({{"use_karras_sigmas", true}}), cls);
    s->set_timesteps(10);
    const auto& sig = s->sigmas();
    EXPECT_NEAR(sig.front(), 14.6146, 1e-3) << cls;
    EXPECT_EQ(sig.back(), 0.0) << cls;
    for (size_t i = 1; i < sig.size(); ++i) EXPECT_LE(sig[i], sig[i - 1]) << cls;
    // Karras timesteps are fractional, interpolated from log-sigma.
    EXPECT_NE(s->timesteps()[1], std::floor(s->timesteps()[1])) << cls;
    EXPECT_TRUE(std::isfinite(rollout(*s, nullptr).f32()[0])) << cls;
  }
  EXPECT_THROW(make_scheduler(sd15({{"use_karras_sigmas", true}, {"use_exponential_sigmas", true}}),
                              "EulerDiscreteScheduler"),
               ConfigError);
}

TEST(lms_scheduler, coefficients_integrate_the_lagrange_basis) {
  LMSDiscreteScheduler s{SchedulerConfig(sd15())};
  s.set_timesteps(20);
  // The basis polynomials sum to 1, so the coefficients sum to sigma[t+1] - sigma[t] (up to the
  // float32 evaluation of the basis that diffusers uses).
  for (int t = 3; t < 19; ++t) {
    double sum = 0;
    for (int j = 0; j < 4; ++j) sum += s.lms_coefficient(4, t, j);
    const double width =
        s.sigmas()[static_cast<size_t>(t + 1)] - s.sigmas()[static_cast<size_t>(t)];
    EXPECT_NEAR(sum, width, 1e-6 * std::fabs(width)) << t;
  }
  EXPECT_DOUBLE_EQ(s.lms_coefficient(1, 0, 0), s.sigmas()[1] - s.sigmas()[0]);
}

TEST(quadrature, exact_on_polynomials_and_accurate_on_smooth_functions) {
  EXPECT_NEAR(integrate_adaptive([](double x) { return x * x * x; }, 0, 1), 0.25, 1e-15);
  EXPECT_NEAR(integrate_adaptive([](double x) { return x * x; }, 2, -1), -3.0, 1e-14);
  EXPECT_NEAR(integrate_adaptive([](double x) { return std::sin(x); }, 0, M_PI), 2.0, 1e-13);
  EXPECT_NEAR(integrate_adaptive([](double x) { return std::sqrt(x); }, 0, 1), 2.0 / 3, 1e-9);
  EXPECT_EQ(integrate_adaptive([](double x) { return x; }, 1, 1), 0.0);
}

}  // namespace diffuse::test
