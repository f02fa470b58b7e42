// Per-class factories behind make_scheduler(). Each scheduler class lives in its own file pair and
// exposes one factory here, so scheduler_factory.cpp can dispatch on the diffusers class name
// without seeing the classes themselves.
#pragma once

#include <memory>

#include "schedulers/noise_schedule.h"
#include "schedulers/scheduler.h"

namespace diffuse {

// Part 1: discrete-time and k-diffusion style samplers.
std::unique_ptr<Scheduler> make_pndm(const SchedulerConfig& config);             // PNDMScheduler
std::unique_ptr<Scheduler> make_ddim(const SchedulerConfig& config);             // DDIMScheduler
std::unique_ptr<Scheduler> make_ddpm(const SchedulerConfig& config);             // DDPMScheduler
std::unique_ptr<Scheduler> make_euler_discrete(const SchedulerConfig& config);   // EulerDiscrete
std::unique_ptr<Scheduler> make_euler_ancestral(const SchedulerConfig& config);  // EulerAncestral
std::unique_ptr<Scheduler> make_lms_discrete(const SchedulerConfig& config);     // LMSDiscrete
std::unique_ptr<Scheduler> make_heun_discrete(const SchedulerConfig& config);    // HeunDiscrete
std::unique_ptr<Scheduler> make_lcm(const SchedulerConfig& config);              // LCMScheduler

// Part 2: multistep solvers and KDPM2.
std::unique_ptr<Scheduler> make_dpmsolver_multistep(const SchedulerConfig& config);
std::unique_ptr<Scheduler> make_unipc_multistep(const SchedulerConfig& config);
std::unique_ptr<Scheduler> make_kdpm2_discrete(const SchedulerConfig& config);
std::unique_ptr<Scheduler> make_kdpm2_ancestral_discrete(const SchedulerConfig& config);

}  // namespace diffuse
