// Scheduler configurations the shared golden fixtures do not cover (beta schedules computed by
// diffusers from "linear" / "scaled_linear" / "squaredcos_cap_v2", DDIM/DDPM clipping and
// thresholding, PNDM's Runge-Kutta warm-up, solver orders, algorithm and solver types, sigma
// spacings, img2img starts), against diffusers' schedulers built by SchedulerClass.from_config and
// run with the golden rollout's fake model. The reference is
// tests/data/reference/scheduler_variants.safetensors, written by
// tools/reference/make_scheduler_variants.py (versions in its metadata).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "common/fixtures.h"
#include "random/random_source.h"
#include "schedulers/scheduler.h"

namespace diffuse {
namespace {

std::string variants_path() {
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "data" / "reference" /
          "scheduler_variants.safetensors")
      .string();
}

// Runs every reference case of `class_name`. Integer timesteps must match exactly, fractional ones
// within 1e-4. KDPM2's midpoint timesteps (odd entries: t0, mid0, t1, mid1, ...) are always held
// to 1e-4, also where the reference's happens to be a whole number (a midpoint that interpolates
// to 831.0, or clips to 0 below the smallest training sigma): they come from sigma_to_t on
// float32 sigmas, whose last bits depend on the torch build's sqrt/log (ours match the golden
// fixtures' exactly, see test_kdpm2.cpp). The torch that made tests/data/reference (2.15, see its
// metadata) rounds float32 sqrt incorrectly in places (torch.sqrt(19.1925278f) = 4.38092804; the
// correctly rounded value, numpy's and ours, is 4.38092756), which moves a log-sigma by one ulp and
// an interpolated midpoint by up to two: midpoints are held to max(1e-4, 2 float32 ulps).
void check_variants(const std::string& class_name) {
  const SafetensorsFile ref = SafetensorsFile::open(variants_path());
  const auto meta = nlohmann::json::parse(ref.metadata().at("json"));
  const SafetensorsFile golden = test::golden("sched-dpmpp-2m.safetensors");
  const Tensor init = golden.get("init").to(DType::F32).contiguous();
  const Tensor fixed = golden.get("fixed").to(DType::F32).contiguous();
  int cases = 0;
  for (const auto& c : meta.at("cases")) {
    if (c.at("class") != class_name) continue;
    ++cases;
    const std::string name = c.at("name");
    SCOPED_TRACE(name);
    auto s = make_scheduler(c.at("config"), class_name);
    s->set_timesteps(c.at("steps").get<int>());

    const Tensor ref_ts = ref.get(name + ".timesteps").to(DType::F64).contiguous();
    const auto& ts = s->timesteps();
    ASSERT_EQ(static_cast<int64_t>(ts.size()), ref_ts.numel());
    const bool kdpm2 = class_name.rfind("KDPM2", 0) == 0;
    for (size_t i = 0; i < ts.size(); ++i) {
      const double r = ref_ts.data_as<double>()[i];
      const bool midpoint = kdpm2 && i % 2 == 1;
      const auto rf = static_cast<float>(r);
      const double two_ulps = 2.0 * (std::nextafter(rf, INFINITY) - rf);
      if (r == std::floor(r) && !midpoint)
        EXPECT_EQ(ts[i], r) << "timestep " << i;
      else
        EXPECT_NEAR(ts[i], r, midpoint ? std::max(1e-4, two_ulps) : 1e-4) << "timestep " << i;
    }

    size_t start = 0;
    Tensor x;
    if (c.at("begin").is_null()) {
      x = Tensor::empty(init.shape());
      const auto sigma = static_cast<float>(s->init_noise_sigma());
      for (int64_t k = 0; k < x.numel(); ++k) x.f32()[k] = init.f32()[k] * sigma;
    } else {
      start = static_cast<size_t>(c.at("begin").get<int>() * s->order());
      s->set_begin_index(static_cast<int>(start));
      x = s->add_noise(init, fixed, ts[start]);
    }
    auto rng = make_random_source("torch", 103);
    for (size_t i = start; i < ts.size(); ++i) {
      const Tensor xin = s->scale_model_input(x, ts[i]);
      Tensor eps = Tensor::empty(x.shape());
      const auto a = static_cast<float>(0.3 * std::sin(ts[i] / 100.0));
      for (int64_t k = 0; k < eps.numel(); ++k)
        eps.f32()[k] = 0.5f * xin.f32()[k] + a * fixed.f32()[k];
      x = s->step(eps, ts[i], x, rng.get());
    }
    const double err = test::rel_error(x, ref.get(name + ".final"));
    EXPECT_LE(err, 1e-5);
    std::printf("  %s: final rel error %.3g\n", name.c_str(), err);
  }
  EXPECT_GT(cases, 0) << "no reference cases for " << class_name;
}

TEST(ddim_scheduler, diffusers_variants) {
  check_variants("DDIMScheduler");
}
TEST(ddpm_scheduler, diffusers_variants) {
  check_variants("DDPMScheduler");
}
TEST(pndm_scheduler, diffusers_variants) {
  check_variants("PNDMScheduler");
}
TEST(euler_discrete_scheduler, diffusers_variants) {
  check_variants("EulerDiscreteScheduler");
}
TEST(euler_ancestral_discrete_scheduler, diffusers_variants) {
  check_variants("EulerAncestralDiscreteScheduler");
}
TEST(lms_discrete_scheduler, diffusers_variants) {
  check_variants("LMSDiscreteScheduler");
}
TEST(heun_discrete_scheduler, diffusers_variants) {
  check_variants("HeunDiscreteScheduler");
}
TEST(lcm_scheduler, diffusers_variants) {
  check_variants("LCMScheduler");
}
TEST(dpmsolver_multistep_scheduler, diffusers_variants) {
  check_variants("DPMSolverMultistepScheduler");
}
TEST(unipc_multistep_scheduler, diffusers_variants) {
  check_variants("UniPCMultistepScheduler");
}
TEST(kdpm2_discrete_scheduler, diffusers_variants) {
  check_variants("KDPM2DiscreteScheduler");
}
TEST(kdpm2_ancestral_discrete_scheduler, diffusers_variants) {
  check_variants("KDPM2AncestralDiscreteScheduler");
}

// Every class in the reference file has a test above (a new class in the generator needs one).
TEST(scheduler_variants, every_reference_class_is_checked) {
  const std::set<std::string> checked = {"DDIMScheduler",
                                         "DDPMScheduler",
                                         "PNDMScheduler",
                                         "EulerDiscreteScheduler",
                                         "EulerAncestralDiscreteScheduler",
                                         "LMSDiscreteScheduler",
                                         "HeunDiscreteScheduler",
                                         "LCMScheduler",
                                         "DPMSolverMultistepScheduler",
                                         "UniPCMultistepScheduler",
                                         "KDPM2DiscreteScheduler",
                                         "KDPM2AncestralDiscreteScheduler"};
  const SafetensorsFile ref = SafetensorsFile::open(variants_path());
  const auto meta = nlohmann::json::parse(ref.metadata().at("json"));
  for (const auto& c : meta.at("cases"))
    EXPECT_TRUE(checked.count(c.at("class").get<std::string>())) << c.at("name");
}

}  // namespace
}  // namespace diffuse
