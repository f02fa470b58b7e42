// KDPM2DiscreteScheduler and KDPM2AncestralDiscreteScheduler against diffusers' golden rollouts,
// plus their config checks.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "diffuse/error.hpp"
#include "schedulers/rollout.h"
#include "schedulers/scheduler.h"

namespace diffuse {
namespace {

TEST(kdpm2_discrete_scheduler, golden_kdpm2) {
  test::run_golden_rollout("kdpm2");
}
TEST(kdpm2_ancestral_discrete_scheduler, golden_kdpm2_a) {
  test::run_golden_rollout("kdpm2-a");
}

// Throws ConfigError whose message names `key`.
void expect_config_error_in_kdpm2(const char* class_name, const nlohmann::json& config,
                                  const std::string& key) {
  try {
    make_scheduler(config, class_name);
    ADD_FAILURE() << class_name << ": no error for " << config.dump();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
  }
}

TEST(kdpm2_discrete_scheduler, rejects_bad_config) {
  for (const char* cls : {"KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler"}) {
    expect_config_error_in_kdpm2(cls, {{"prediction_type", "sample"}}, "prediction_type");
    expect_config_error_in_kdpm2(cls, {{"timestep_spacing", "cosine"}}, "timestep_spacing");
    expect_config_error_in_kdpm2(cls, {{"beta_schedule", "quadratic"}}, "beta_schedule");
    expect_config_error_in_kdpm2(
        cls, {{"use_karras_sigmas", true}, {"use_exponential_sigmas", true}}, "use_karras_sigmas");
    expect_config_error_in_kdpm2(cls, {{"steps_offset", 0.5}}, "steps_offset");
  }
}

TEST(kdpm2_discrete_scheduler, rejects_bad_steps_and_timesteps) {
  auto s = make_scheduler(nlohmann::json::object(), "KDPM2DiscreteScheduler");
  EXPECT_THROW(s->set_timesteps(0), ConfigError);
  EXPECT_THROW(s->set_timesteps(1001), ConfigError);
  s->set_timesteps(10);
  // A timestep that is not in the schedule cannot start the rollout (diffusers raises too).
  const Tensor x = Tensor::zeros({1, 4, 2, 2});
  EXPECT_THROW(s->scale_model_input(x, 12.5), ConfigError);
}

}  // namespace
}  // namespace diffuse
