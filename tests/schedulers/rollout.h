// The golden scheduler rollout check shared by every scheduler test (see the fixtures README,
// "sched-<name>.safetensors"): builds the scheduler from the case's own metadata, then checks
// timesteps and sigmas exactly, init_noise_sigma, and every model input and trajectory step
// against diffusers within `tol` (max|ours - ref| / max|ref|).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace diffuse::test {

/// The `__metadata__["json"]` object of golden/sched-<case_name>.safetensors.
nlohmann::json golden_scheduler_case(const std::string& case_name);

/// The scheduler config a case describes: its "config" plus step() arguments diffusers passes
/// per call that our Scheduler reads from its config instead (DDIM's "eta").
nlohmann::json golden_scheduler_config(const nlohmann::json& meta);

/// Runs the whole check with GoogleTest assertions (non-fatal per step, so one run reports every
/// failing step). Returns the largest relative error seen over model inputs and trajectory.
double check_golden_rollout(const std::string& case_name, double tol = 1e-4);

/// check_golden_rollout with the default tolerance, printing the worst error so test logs show
/// how close each case runs to it.
void run_golden_rollout(const std::string& case_name);

/// The same check for a rollout file of the golden format anywhere (e.g. one made locally with
/// another diffusers configuration).
double check_rollout_file(const std::string& path, double tol = 1e-4);

}  // namespace diffuse::test
