"""Writes tests/data/reference/scheduler_variants.safetensors: diffusers' schedulers, as installed
from PyPI, run on configurations the shared golden fixtures do not cover (beta schedules, solver
orders, algorithm and solver types, sigma spacings, thresholding, img2img starts), with the golden
rollout's fake model (see ../shared/fixtures/README.md, "sched-<name>.safetensors").

Usage: python make_scheduler_variants.py [<shared/fixtures>] [<out>]
  defaults: ../shared/fixtures relative to the project root, and
  tests/data/reference/scheduler_variants.safetensors.

Every case builds its scheduler the way a diffusers user does, through diffusers' own config path:
`SchedulerClass.from_config(config)`, so diffusers computes the betas itself from `beta_schedule`
("linear", "scaled_linear", "squaredcos_cap_v2"); only the case named "*-trained-betas" passes
`trained_betas`. The C++ test (tests/schedulers/test_scheduler_variants.cpp) builds ours from the
same `config` with make_scheduler, so missing keys take each side's own class defaults.

Stored per case: `<name>.timesteps` (float64) and `<name>.final` (the sample after the last step).
The metadata key `json` holds the versions (torch, diffusers, numpy) and, per case, its class,
config, steps, img2img start and the config diffusers resolved (for diagnosis).
CPU, float32. Needs torch, numpy, diffusers.
"""
import inspect
import json
import os
import sys

import diffusers
import numpy as np
import torch
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,
                       HeunDiscreteScheduler, KDPM2AncestralDiscreteScheduler,
                       KDPM2DiscreteScheduler, LCMScheduler, LMSDiscreteScheduler, PNDMScheduler,
                       UniPCMultistepScheduler)
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
fixtures = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "fixtures")
out_path = (sys.argv[2] if len(sys.argv) > 2 else
            os.path.join(ROOT, "tests", "data", "reference", "scheduler_variants.safetensors"))

torch.set_num_threads(1)
D, U = DPMSolverMultistepScheduler, UniPCMultistepScheduler
K, KA = KDPM2DiscreteScheduler, KDPM2AncestralDiscreteScheduler
golden = load_file(os.path.join(fixtures, "golden", "sched-dpmpp-2m.safetensors"))
init, fixed = golden["init"], golden["fixed"]

# SD 1.5's noise schedule: every case uses it unless the case sets beta_schedule itself.
SD = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
LIN = {"beta_schedule": "linear"}  # the class defaults, 0.0001 .. 0.02
COS = {"beta_schedule": "squaredcos_cap_v2"}
# SD 1.5's config for the discrete schedulers (steps_offset 1, as the golden cases).
SD15 = {**SD, "steps_offset": 1}


def sd_linear_betas():
    """A non-standard trained_betas list (linear in sqrt, then perturbed) for the one case about
    trained_betas: the schedule must come from the list, not from beta_schedule."""
    b = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    b = b * (1.0 + 0.05 * np.sin(np.arange(1000) / 37.0))
    return [float(np.float32(v)) for v in b]


cases = [  # name, class, config (over SD 1.5's betas unless it sets beta_schedule), steps, img2img start
    # --- beta schedules, computed by diffusers from the config (linear: the class defaults) ---
    ("ddim-linear", DDIMScheduler, {**LIN, "steps_offset": 1}, 20, None),
    ("ddim-cos", DDIMScheduler, {**COS, "steps_offset": 1}, 20, None),
    ("ddim-linear-eta1", DDIMScheduler, {**LIN, "eta": 1.0}, 15, None),
    ("ddpm-linear", DDPMScheduler, {**LIN}, 20, None),
    ("ddpm-cos", DDPMScheduler, {**COS}, 20, None),
    ("ddpm-sd", DDPMScheduler, {**SD15}, 15, None),
    ("ddim-thresh", DDIMScheduler, {**SD15, "thresholding": True, "sample_max_value": 1.5,
                                    "dynamic_thresholding_ratio": 0.9, "clip_sample": False}, 20, None),
    ("ddim-clip-range", DDIMScheduler, {**SD15, "clip_sample": True, "clip_sample_range": 0.5}, 20, None),
    ("ddpm-thresh", DDPMScheduler, {**SD15, "thresholding": True, "sample_max_value": 1.5,
                                    "dynamic_thresholding_ratio": 0.9, "clip_sample": False}, 15, None),
    ("ddpm-clip-range", DDPMScheduler, {**SD15, "clip_sample": True, "clip_sample_range": 0.5}, 15, None),
    ("pndm-linear", PNDMScheduler, {**LIN, "skip_prk_steps": True, "steps_offset": 1}, 20, None),
    ("pndm-cos", PNDMScheduler, {**COS, "skip_prk_steps": True, "steps_offset": 1}, 20, None),
    ("pndm-prk-sd", PNDMScheduler, {**SD15, "skip_prk_steps": False}, 20, None),
    ("pndm-prk-linear", PNDMScheduler, {**LIN}, 15, None),
    ("euler-linear", EulerDiscreteScheduler, {**LIN}, 20, None),
    ("euler-cos", EulerDiscreteScheduler, {**COS}, 20, None),
    ("euler-a-linear", EulerAncestralDiscreteScheduler, {**LIN}, 20, None),
    ("euler-a-cos", EulerAncestralDiscreteScheduler, {**COS}, 20, None),
    ("lms-linear", LMSDiscreteScheduler, {**LIN}, 20, None),
    ("lms-cos", LMSDiscreteScheduler, {**COS}, 20, None),
    ("heun-linear", HeunDiscreteScheduler, {**LIN}, 15, None),
    ("heun-cos", HeunDiscreteScheduler, {**COS}, 15, None),
    ("lcm-linear", LCMScheduler, {**LIN}, 6, None),
    ("lcm-sd", LCMScheduler, {**SD}, 4, None),
    ("dpm-linear", D, {**LIN}, 20, None),
    ("dpm-cos", D, {**COS}, 20, None),
    ("dpm-sd-trained-betas", D, {"trained_betas": sd_linear_betas()}, 20, None),
    ("unipc-linear", U, {**LIN}, 20, None),
    ("unipc-cos", U, {**COS}, 20, None),
    ("kdpm2-cos", K, {**COS}, 15, None),
    ("kdpm2a-linear", KA, {**LIN}, 15, None),
    ("kdpm2a-cos", KA, {**COS}, 15, None),
    # --- solver variants (over SD 1.5's betas unless set) ---
    ("dpm-o3", D, {"solver_order": 3}, 20, None),
    ("dpm-o3-7", D, {"solver_order": 3, "final_sigmas_type": "sigma_min"}, 7, None),
    ("dpm-o2-7", D, {}, 7, None),
    ("dpm-o1", D, {"solver_order": 1}, 12, None),
    ("dpm-heun", D, {"solver_type": "heun"}, 20, None),
    ("dpm-heun-o3", D, {"solver_type": "heun", "solver_order": 3}, 20, None),
    ("dpm-nopp", D, {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-nopp-heun", D, {"algorithm_type": "dpmsolver", "solver_type": "heun", "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-nopp-o3", D, {"algorithm_type": "dpmsolver", "solver_order": 3, "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-nopp-v", D, {"algorithm_type": "dpmsolver", "prediction_type": "v_prediction", "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-nopp-sample", D, {"algorithm_type": "dpmsolver", "prediction_type": "sample", "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-sde", D, {"algorithm_type": "sde-dpmsolver", "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-sde-heun", D, {"algorithm_type": "sde-dpmsolver", "solver_type": "heun", "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-sdepp-heun", D, {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun"}, 20, None),
    ("dpm-sdepp-o3", D, {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}, 20, None),
    ("dpm-thresh", D, {"thresholding": True, "sample_max_value": 1.5, "dynamic_thresholding_ratio": 0.9}, 20, None),
    ("dpm-nopp-thresh", D, {"algorithm_type": "dpmsolver", "thresholding": True, "sample_max_value": 1.5,
                            "dynamic_thresholding_ratio": 0.9, "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-karras-trailing", D, {"use_karras_sigmas": True, "timestep_spacing": "trailing", "euler_at_final": True}, 25, None),
    ("dpm-karras-sigmamin", D, {"use_karras_sigmas": True, "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-lu", D, {"use_lu_lambdas": True}, 20, None),
    ("dpm-exp", D, {"use_exponential_sigmas": True}, 20, None),
    ("dpm-cos-clip", D, {"beta_schedule": "squaredcos_cap_v2", "lambda_min_clipped": -5.1}, 20, None),
    ("dpm-leading", D, {"timestep_spacing": "leading", "steps_offset": 1}, 20, None),
    ("dpm-trailing-v-zsnr", D, {"timestep_spacing": "trailing", "prediction_type": "v_prediction",
                                "rescale_betas_zero_snr": True}, 20, None),
    ("dpm-trailing-30", D, {"timestep_spacing": "trailing"}, 30, None),
    ("dpm-sample", D, {"prediction_type": "sample"}, 20, None),
    ("dpm-img2img", D, {}, 20, 8),
    ("dpm-img2img-karras", D, {"use_karras_sigmas": True}, 20, 12),
    ("dpm-sde-img2img", D, {"algorithm_type": "sde-dpmsolver++"}, 20, 6),
    ("unipc-o3", U, {"solver_order": 3}, 20, None),
    ("unipc-o3-8", U, {"solver_order": 3}, 8, None),
    ("unipc-o1", U, {"solver_order": 1}, 12, None),
    ("unipc-bh1-sigmamin", U, {"solver_type": "bh1", "final_sigmas_type": "sigma_min"}, 20, None),
    ("unipc-nox0", U, {"predict_x0": False, "final_sigmas_type": "sigma_min"}, 20, None),
    ("unipc-nox0-v-o3", U, {"predict_x0": False, "prediction_type": "v_prediction", "solver_order": 3,
                            "final_sigmas_type": "sigma_min"}, 20, None),
    ("unipc-bh1-nox0-o3", U, {"solver_type": "bh1", "predict_x0": False, "final_sigmas_type": "sigma_min",
                              "solver_order": 3}, 20, None),
    ("unipc-disable", U, {"disable_corrector": [0, 3, 7]}, 20, None),
    ("unipc-karras", U, {"use_karras_sigmas": True, "final_sigmas_type": "sigma_min"}, 20, None),
    ("unipc-karras-minmax", U, {"use_karras_sigmas": True, "sigma_min": 0.05, "sigma_max": 10.0}, 20, None),
    ("unipc-exp", U, {"use_exponential_sigmas": True}, 20, None),
    ("unipc-v-trailing", U, {"prediction_type": "v_prediction", "timestep_spacing": "trailing"}, 20, None),
    ("unipc-leading", U, {"timestep_spacing": "leading", "steps_offset": 1}, 20, None),
    ("unipc-no-lower-final", U, {"lower_order_final": False, "solver_order": 3, "final_sigmas_type": "sigma_min"}, 10, None),
    ("unipc-thresh", U, {"thresholding": True, "sample_max_value": 1.5, "dynamic_thresholding_ratio": 0.9}, 20, None),
    ("unipc-sample", U, {"prediction_type": "sample"}, 20, None),
    ("unipc-img2img", U, {}, 20, 7),
    ("kdpm2-v", K, {"prediction_type": "v_prediction"}, 20, None),
    ("kdpm2-karras", K, {"use_karras_sigmas": True}, 20, None),
    ("kdpm2-exp", K, {"use_exponential_sigmas": True}, 20, None),
    ("kdpm2-leading", K, {"timestep_spacing": "leading", "steps_offset": 1}, 20, None),
    ("kdpm2-trailing", K, {"timestep_spacing": "trailing"}, 25, None),
    ("kdpm2-linear", K, {"beta_schedule": "linear", "beta_start": 0.00085, "beta_end": 0.012}, 15, None),
    ("kdpm2-img2img", K, {}, 20, 8),
    ("kdpm2a-v", KA, {"prediction_type": "v_prediction"}, 20, None),
    ("kdpm2a-karras", KA, {"use_karras_sigmas": True}, 20, None),
    ("kdpm2a-leading", KA, {"timestep_spacing": "leading", "steps_offset": 1}, 12, None),
    ("kdpm2a-img2img", KA, {}, 20, 5),
]


def jsonable(v):
    """Strict JSON: non-finite floats (lambda_min_clipped = -inf) become strings."""
    if isinstance(v, (np.ndarray, torch.Tensor)):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    return v


tensors, index = {}, []
for name, cls, config, steps, begin in cases:
    if "beta_schedule" not in config and "trained_betas" not in config:
        config = {**SD, **config}
    config = dict(config)
    step_kw = {}
    diffusers_config = dict(config)
    if "eta" in diffusers_config:  # a step() argument in diffusers, a config key in diffuse
        step_kw["eta"] = diffusers_config.pop("eta")
    s = cls.from_config(diffusers_config)
    s.set_timesteps(steps)
    gen = torch.Generator().manual_seed(103)
    if "generator" in inspect.signature(s.step).parameters:
        step_kw["generator"] = gen
    start = 0 if begin is None else begin * s.order
    ts = s.timesteps[start:]
    if begin is None:
        x = init * s.init_noise_sigma
    else:
        s.set_begin_index(start)
        x = s.add_noise(init, fixed, ts[:1])
    for t in ts:
        xin = s.scale_model_input(x, t)
        eps = 0.5 * xin + 0.3 * torch.sin(t / 100) * fixed
        x = s.step(eps, t, x, **step_kw).prev_sample
    assert torch.isfinite(x).all(), name
    tensors[name + ".timesteps"] = s.timesteps.to(torch.float64)
    tensors[name + ".final"] = x.to(torch.float32).contiguous()
    resolved = {k: jsonable(v) for k, v in s.config.items() if not k.startswith("_")}
    if "trained_betas" in config:
        resolved["trained_betas"] = "(as config)"
    index.append({"name": name, "class": cls.__name__, "config": config, "steps": steps,
                  "begin": begin, "diffusers_config": resolved})

meta = {
    "source": "diffusers %s, torch %s, numpy %s (PyPI), CPU float32; schedulers built with "
              "SchedulerClass.from_config(config)" % (diffusers.__version__, torch.__version__,
                                                       np.__version__),
    "versions": {"diffusers": diffusers.__version__, "torch": torch.__version__,
                 "numpy": np.__version__},
    "generator": "tools/reference/make_scheduler_variants.py",
    "model": "eps = 0.5*scaled_input + 0.3*sin(t/100)*fixed; init/fixed from golden "
             "sched-dpmpp-2m; step generator torch.Generator().manual_seed(103)",
    "cases": index,
}
os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
save_file(tensors, out_path, metadata={"json": json.dumps(meta, allow_nan=False)})
print(len(index), "cases written to", out_path, os.path.getsize(out_path), "bytes")
