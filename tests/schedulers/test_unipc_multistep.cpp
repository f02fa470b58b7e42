// UniPCMultistepScheduler against diffusers' golden rollout, plus its config checks.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "diffuse/error.hpp"
#include "schedulers/rollout.h"
#include "schedulers/scheduler.h"

namespace diffuse {
namespace {

TEST(unipc_multistep_scheduler, golden_unipc) {
  test::run_golden_rollout("unipc");
}

// Throws ConfigError whose message names `key`.
void expect_config_error_in_unipc_multistep(const nlohmann::json& config, const std::string& key) {
  try {
    make_scheduler(config, "UniPCMultistepScheduler");
    ADD_FAILURE() << "no error for " << config.dump();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
  }
}

TEST(unipc_multistep_scheduler, rejects_bad_config) {
  expect_config_error_in_unipc_multistep({{"solver_type", "bh3"}}, "solver_type");
  expect_config_error_in_unipc_multistep({{"prediction_type", "x0"}}, "prediction_type");
  expect_config_error_in_unipc_multistep({{"final_sigmas_type", "max"}}, "final_sigmas_type");
  expect_config_error_in_unipc_multistep({{"timestep_spacing", "cosine"}}, "timestep_spacing");
  expect_config_error_in_unipc_multistep({{"solver_order", 0}}, "solver_order");
  expect_config_error_in_unipc_multistep({{"disable_corrector", 3}}, "disable_corrector");
  expect_config_error_in_unipc_multistep({{"disable_corrector", {"a"}}}, "disable_corrector");
  expect_config_error_in_unipc_multistep({{"predict_x0", "yes"}}, "predict_x0");
  expect_config_error_in_unipc_multistep({{"use_beta_sigmas", true}}, "use_beta_sigmas");
  // Combinations that end in NaN in diffusers are refused.
  expect_config_error_in_unipc_multistep({{"solver_type", "bh1"}}, "final_sigmas_type");
  expect_config_error_in_unipc_multistep({{"predict_x0", false}}, "final_sigmas_type");
}

TEST(unipc_multistep_scheduler, rejects_bad_steps) {
  auto s = make_scheduler(nlohmann::json::object(), "UniPCMultistepScheduler");
  EXPECT_THROW(s->set_timesteps(0), ConfigError);
  EXPECT_THROW(s->set_timesteps(1001), ConfigError);
}

}  // namespace
}  // namespace diffuse
