// DPM-Solver, UniPC and KDPM2 configurations the shared golden fixtures do not cover (solver
// orders, algorithm and solver types, sigma spacings, thresholding, img2img starts), against
// diffusers' own scheduler code run with the golden rollout's fake model. The reference is
// data/diffusers_variants.safetensors, written by data/make_diffusers_variants.py.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "common/fixtures.h"
#include "random/random_source.h"
#include "schedulers/scheduler.h"

namespace diffuse {
namespace {

std::string variants_path() {
  return (std::filesystem::path(__FILE__).parent_path() / "data" / "diffusers_variants.safetensors")
      .string();
}

// Runs every reference case of `class_name`. Integer timesteps must match exactly; KDPM2's
// fractional midpoint timesteps are allowed a float32 ulp, because the reference was made with an
// older torch whose log/exp round differently from the golden fixtures' (which ours match
// exactly, see test_kdpm2.cpp).
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
    for (size_t i = 0; i < ts.size(); ++i) {
      const double r = ref_ts.data_as<double>()[i];
      if (r == std::floor(r))
        EXPECT_EQ(ts[i], r) << "timestep " << i;
      else
        EXPECT_NEAR(ts[i], r, 1e-4) << "timestep " << i;
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
    EXPECT_LE(test::rel_error(x, ref.get(name + ".final")), 1e-5);
  }
  EXPECT_GT(cases, 0) << "no reference cases for " << class_name;
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

}  // namespace
}  // namespace diffuse
