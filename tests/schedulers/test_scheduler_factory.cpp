// make_scheduler dispatch, presets, and the errors bad input must produce.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/fixtures.h"
#include "diffuse/error.hpp"
#include "schedulers/scheduler.h"

namespace diffuse::test {
namespace {

// SD 1.5's scheduler_config.json (what the golden cases start from).
nlohmann::json sd15_config() {
  return {{"_class_name", "PNDMScheduler"},   {"beta_end", 0.012},
          {"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085},
          {"num_train_timesteps", 1000},      {"set_alpha_to_one", false},
          {"skip_prk_steps", true},           {"steps_offset", 1},
          {"trained_betas", nullptr},         {"clip_sample", false}};
}

// Every class make_scheduler builds (this part's and the multistep / KDPM2 ones).
const char* const kClasses[] = {"PNDMScheduler",
                                "DDIMScheduler",
                                "DDPMScheduler",
                                "EulerDiscreteScheduler",
                                "EulerAncestralDiscreteScheduler",
                                "LMSDiscreteScheduler",
                                "HeunDiscreteScheduler",
                                "LCMScheduler",
                                "DPMSolverMultistepScheduler",
                                "UniPCMultistepScheduler",
                                "KDPM2DiscreteScheduler",
                                "KDPM2AncestralDiscreteScheduler"};

// Runs f and expects a ConfigError whose message contains every one of `needles`.
template <typename F>
void expect_config_error_in_scheduler_factory(F f, std::initializer_list<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "no ConfigError";
  } catch (const ConfigError& e) {
    for (const auto& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << "message \"" << e.what() << "\" does not name " << n;
  }
}

}  // namespace

TEST(scheduler_factory, dispatches_on_class_name) {
  auto s = make_scheduler(sd15_config());
  EXPECT_EQ(s->class_name(), "PNDMScheduler");
  for (const char* name : kClasses) {
    auto t = make_scheduler(sd15_config(), name);
    EXPECT_EQ(t->class_name(), name);
  }
}

TEST(scheduler_factory, unknown_class_is_named_with_the_supported_list) {
  expect_config_error_in_scheduler_factory(
      [] { make_scheduler(sd15_config(), "FancyScheduler"); },
      {"FancyScheduler", "EulerDiscreteScheduler", "DDIMScheduler"});
  nlohmann::json c = sd15_config();
  c["_class_name"] = "ScoreSdeVeScheduler";
  expect_config_error_in_scheduler_factory([&] { make_scheduler(c); }, {"ScoreSdeVeScheduler"});
  c.erase("_class_name");
  expect_config_error_in_scheduler_factory([&] { make_scheduler(c); }, {"_class_name"});
  expect_config_error_in_scheduler_factory(
      [] { make_scheduler(nlohmann::json::array(), "DDIMScheduler"); }, {"object"});
}

TEST(scheduler_factory, unknown_beta_schedule_is_named) {
  for (const char* name : kClasses) {
    nlohmann::json c = sd15_config();
    c["beta_schedule"] = "quadratic";
    expect_config_error_in_scheduler_factory([&] { make_scheduler(c, name); },
                                             {"beta_schedule", "quadratic"});
  }
}

TEST(scheduler_factory, bad_values_name_their_key) {
  nlohmann::json c = sd15_config();
  c["timestep_spacing"] = "uniform";
  expect_config_error_in_scheduler_factory([&] { make_scheduler(c, "EulerDiscreteScheduler"); },
                                           {"timestep_spacing", "uniform"});
  c = sd15_config();
  c["prediction_type"] = "x0";
  expect_config_error_in_scheduler_factory([&] { make_scheduler(c, "DDIMScheduler"); },
                                           {"prediction_type", "x0"});
  c["prediction_type"] = "sample";  // diffusers' Euler ancestral and PNDM do not implement it
  expect_config_error_in_scheduler_factory(
      [&] { make_scheduler(c, "EulerAncestralDiscreteScheduler"); }, {"prediction_type", "sample"});
  expect_config_error_in_scheduler_factory([&] { make_scheduler(c, "PNDMScheduler"); },
                                           {"prediction_type", "sample"});
  c = sd15_config();
  c["steps_offset"] = "one";
  expect_config_error_in_scheduler_factory([&] { make_scheduler(c, "DDIMScheduler"); },
                                           {"steps_offset"});
  c = sd15_config();
  c["variance_type"] = "learned_range";
  expect_config_error_in_scheduler_factory([&] { make_scheduler(c, "DDPMScheduler"); },
                                           {"variance_type", "learned_range"});
  c = sd15_config();
  c["use_karras_sigmas"] = "yes";
  expect_config_error_in_scheduler_factory([&] { make_scheduler(c, "LMSDiscreteScheduler"); },
                                           {"use_karras_sigmas"});
}

TEST(scheduler_factory, steps_below_one_or_above_training_are_rejected) {
  for (const char* name : kClasses) {
    auto s = make_scheduler(sd15_config(), name);
    expect_config_error_in_scheduler_factory([&] { s->set_timesteps(0); }, {"steps"});
    expect_config_error_in_scheduler_factory([&] { s->set_timesteps(-3); }, {"steps", "-3"});
    expect_config_error_in_scheduler_factory([&] { s->set_timesteps(1001); }, {"1001"});
  }
  // LCM's schedule is a subset of its 50 distillation steps.
  auto lcm = make_scheduler(sd15_config(), "LCMScheduler");
  expect_config_error_in_scheduler_factory([&] { lcm->set_timesteps(51); },
                                           {"51", "original_inference_steps"});
}

TEST(scheduler_factory, one_step_schedules_work) {
  for (const char* name : kClasses) {
    auto s = make_scheduler(sd15_config(), name);
    s->set_timesteps(1);
    EXPECT_FALSE(s->timesteps().empty()) << name;
  }
}

TEST(scheduler_preset, unknown_name_is_named_with_the_valid_list) {
  expect_config_error_in_scheduler_factory([] { scheduler_preset("dpm-fast"); },
                                           {"dpm-fast", "euler-a", "dpmpp-2m"});
}

TEST(scheduler_preset, presets_reproduce_the_golden_cases) {
  std::ifstream f(fixture("golden/manifest.json"));
  ASSERT_TRUE(f.good());
  const nlohmann::json manifest = nlohmann::json::parse(f);
  const auto& cases = manifest.at("schedulers");
  int checked = 0;
  for (const std::string& name : scheduler_preset_names()) {
    if (!cases.contains(name)) continue;
    const SchedulerPreset p = scheduler_preset(name);
    EXPECT_EQ(p.class_name, cases[name]["class"].get<std::string>()) << name;
    nlohmann::json merged = sd15_config();
    merged.erase("_class_name");
    merged.update(nlohmann::json::parse(p.overrides_json));
    EXPECT_EQ(merged, cases[name]["config"]) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 18);  // every golden case but ddim-eta1 (eta is a step argument)
}

TEST(scheduler_preset, names_and_a1111_names) {
  EXPECT_EQ(scheduler_preset("pndm").a1111_name, "PLMS");
  EXPECT_EQ(scheduler_preset("euler-a").a1111_name, "Euler a");
  EXPECT_EQ(scheduler_preset("Euler-A").class_name, "EulerAncestralDiscreteScheduler");
  EXPECT_EQ(scheduler_preset("dpmpp-2m-karras").a1111_name, "DPM++ 2M Karras");
  EXPECT_EQ(scheduler_preset("kdpm2-a").a1111_name, "DPM2 a");
  // diffusers class names pass through with no overrides.
  const SchedulerPreset p = scheduler_preset("HeunDiscreteScheduler");
  EXPECT_EQ(p.class_name, "HeunDiscreteScheduler");
  EXPECT_EQ(p.overrides_json, "{}");
  EXPECT_EQ(p.a1111_name, "Heun");
  const auto names = scheduler_preset_names();
  for (const char* n : {"pndm",
                        "ddim",
                        "ddpm",
                        "euler",
                        "euler-a",
                        "euler-trailing",
                        "euler-v",
                        "lms",
                        "heun",
                        "kdpm2",
                        "kdpm2-a",
                        "dpmpp-2m",
                        "dpmpp-2m-karras",
                        "dpmpp-2m-sde",
                        "dpmpp-2m-v",
                        "unipc",
                        "lcm",
                        "ddim-v-trailing-rescale",
                        "LCMScheduler",
                        "DPMSolverMultistepScheduler"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  // Every preset's class is one make_scheduler builds.
  for (const std::string& n : names) {
    const SchedulerPreset q = scheduler_preset(n);
    nlohmann::json c = sd15_config();
    c.update(nlohmann::json::parse(q.overrides_json));
    EXPECT_NO_THROW(make_scheduler(c, q.class_name)) << n;
  }
}

}  // namespace diffuse::test
