// DPMSolverMultistepScheduler against diffusers' golden rollouts, plus its config checks.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "diffuse/error.hpp"
#include "schedulers/rollout.h"
#include "schedulers/scheduler.h"

namespace diffuse {
namespace {

TEST(dpmsolver_multistep_scheduler, golden_dpmpp_2m) {
  test::run_golden_rollout("dpmpp-2m");
}
TEST(dpmsolver_multistep_scheduler, golden_dpmpp_2m_karras) {
  test::run_golden_rollout("dpmpp-2m-karras");
}
TEST(dpmsolver_multistep_scheduler, golden_dpmpp_2m_sde) {
  test::run_golden_rollout("dpmpp-2m-sde");
}
TEST(dpmsolver_multistep_scheduler, golden_dpmpp_2m_v) {
  test::run_golden_rollout("dpmpp-2m-v");
}

// Throws ConfigError whose message names `key`.
void expect_config_error(const nlohmann::json& config, const std::string& key) {
  try {
    make_scheduler(config, "DPMSolverMultistepScheduler");
    ADD_FAILURE() << "no error for " << config.dump();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
  }
}

TEST(dpmsolver_multistep_scheduler, rejects_bad_config) {
  expect_config_error({{"algorithm_type", "dpmsolver+++"}}, "algorithm_type");
  expect_config_error({{"solver_type", "rk4"}}, "solver_type");
  expect_config_error({{"prediction_type", "x0"}}, "prediction_type");
  expect_config_error({{"final_sigmas_type", "max"}}, "final_sigmas_type");
  expect_config_error({{"timestep_spacing", "cosine"}}, "timestep_spacing");
  expect_config_error({{"solver_order", 4}}, "solver_order");
  expect_config_error({{"algorithm_type", "dpmsolver"}}, "final_sigmas_type");
  expect_config_error({{"use_karras_sigmas", true}, {"use_exponential_sigmas", true}},
                      "use_karras_sigmas");
  expect_config_error({{"use_karras_sigmas", "yes"}}, "use_karras_sigmas");
}

TEST(dpmsolver_multistep_scheduler, rejects_bad_steps) {
  auto s = make_scheduler(nlohmann::json::object(), "DPMSolverMultistepScheduler");
  EXPECT_THROW(s->set_timesteps(0), ConfigError);
  EXPECT_THROW(s->set_timesteps(1001), ConfigError);
}

}  // namespace
}  // namespace diffuse
