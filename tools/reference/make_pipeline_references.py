"""Writes tests/data/reference/pipe-<case>.safetensors and <case>-<n>.png: whole diffusers
pipelines on the fixtures' tiny models, for features the shared golden fixtures do not cover
(several images per prompt, scheduler overrides, PNDM's Runge-Kutta warm-up, DDIM/DDPM clipping
and thresholding, a non-square size, a batched img2img).

Usage: python make_pipeline_references.py [<shared/fixtures>] [<out dir>]
  defaults: ../shared/fixtures relative to the project root, and tests/data/reference/.

The format is the golden fixtures' (../shared/fixtures/README.md, "pipe-<case>.safetensors"), so
tests/common/pipeline_check.h reads both:
- `step_latents` [evaluations, batch, 4, h, w]: the latents after each step (callback_on_step_end);
- `images` [batch, H, W, 3] in [0, 1] (output_type="np"); `<case>-<n>.png` is round(images * 255);
- metadata `json`: prompt, negative_prompt, num_inference_steps, guidance_scale, height, width,
  seed, model, scheduler (class), strength (img2img), num_images_per_prompt, eta, the scheduler
  config diffusers ran (`scheduler_config`), `scheduler_overrides` (what was passed to
  SchedulerClass.from_config on top of the model's own config), timesteps, and versions.
CPU, float32, generator=torch.Generator("cpu").manual_seed(seed). Needs torch, diffusers,
transformers, safetensors, numpy, pillow.
"""
import json
import os
import sys

import diffusers
import numpy as np
import PIL
import torch
import transformers
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, PNDMScheduler,
                       StableDiffusionImg2ImgPipeline, StableDiffusionPipeline)
from PIL import Image
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
fixtures = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "fixtures")
out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests", "data", "reference")
only = set(sys.argv[3:])  # optional case names

PROMPT = "a photo of an astronaut riding a horse on mars"
VERSIONS = {"torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__}

# name, model, scheduler class, from_config overrides, call arguments
CASES = [
    # Two images from one generator: one batched latent draw, both halves of the batch denoised.
    ("txt2img-batch2-dpmpp", "tiny-sd1", DPMSolverMultistepScheduler, {},
     dict(num_inference_steps=12, guidance_scale=7.5, seed=11, num_images_per_prompt=2,
          negative_prompt="blurry")),
    # ... and with an ancestral sampler, whose per-step noise is a batched draw too.
    ("txt2img-batch2-euler-a", "tiny-sd1", EulerAncestralDiscreteScheduler, {},
     dict(num_inference_steps=10, guidance_scale=7.5, seed=12, num_images_per_prompt=2)),
    # GenerateOptions::karras_sigmas on DPM++ 2M.
    ("txt2img-dpmpp-karras", "tiny-sd1", DPMSolverMultistepScheduler, {"use_karras_sigmas": True},
     dict(num_inference_steps=15, guidance_scale=7.5, seed=13)),
    # GenerateOptions::timestep_spacing: "trailing" on DPM++ (default linspace) ...
    ("txt2img-dpmpp-trailing", "tiny-sd1", DPMSolverMultistepScheduler,
     {"timestep_spacing": "trailing"}, dict(num_inference_steps=15, guidance_scale=7.5, seed=14)),
    # ... and "leading" on Euler (default linspace; SD 1.5's steps_offset 1 applies).
    ("txt2img-euler-leading", "tiny-sd1", EulerDiscreteScheduler, {"timestep_spacing": "leading"},
     dict(num_inference_steps=15, guidance_scale=7.5, seed=15)),
    # PNDM's Runge-Kutta warm-up (skip_prk_steps false: a model-config option).
    ("txt2img-pndm-prk", "tiny-sd1", PNDMScheduler, {"skip_prk_steps": False},
     dict(num_inference_steps=20, guidance_scale=7.5, seed=16)),
    # DDIM: clip_sample, thresholding (model-config options), and GenerateOptions::eta. With x0
    # clipped or thresholded, deterministic DDIM on the tiny random model is ill-conditioned: a
    # 1e-6 relative change of the initial latents grows about 3x per step in diffusers itself
    # (to 0.03 .. 0.9 after 15 steps, 5e-3 after 8), so float32 rounding alone would exceed the
    # 1e-3 step tolerance. These cases run few steps and record their conditioning (below).
    ("txt2img-ddim-clip", "tiny-sd1", DDIMScheduler, {"clip_sample": True},
     dict(num_inference_steps=6, guidance_scale=2.0, seed=17)),
    ("txt2img-ddim-thresh", "tiny-sd1", DDIMScheduler,
     {"thresholding": True, "sample_max_value": 2.0, "dynamic_thresholding_ratio": 0.9},
     dict(num_inference_steps=6, guidance_scale=2.0, seed=18)),
    ("txt2img-ddim-eta", "tiny-sd1", DDIMScheduler, {},
     dict(num_inference_steps=15, guidance_scale=7.5, seed=19, eta=1.0)),
    ("txt2img-sd2-ddim-thresh-v", "tiny-sd2", DDIMScheduler, {"thresholding": True},
     dict(num_inference_steps=15, guidance_scale=7.5, seed=20)),
    # DDPM: clip_sample and thresholding.
    ("txt2img-ddpm-clip", "tiny-sd1", DDPMScheduler, {"clip_sample": True},
     dict(num_inference_steps=15, guidance_scale=7.5, seed=21)),
    ("txt2img-ddpm-thresh", "tiny-sd1", DDPMScheduler, {"thresholding": True},
     dict(num_inference_steps=15, guidance_scale=7.5, seed=22)),
    # A non-square size (latent 16 x 24, as the UNet golden's second case), the model's scheduler.
    ("txt2img-nonsquare-pndm", "tiny-sd1", PNDMScheduler, {},
     dict(num_inference_steps=12, guidance_scale=7.5, seed=23, width=192, height=128,
          negative_prompt="blurry, low quality")),
    # img2img with two images per prompt: the posterior sample and the noise are batched draws.
    ("img2img-batch2-ddim", "tiny-sd1", DDIMScheduler, {},
     dict(num_inference_steps=16, guidance_scale=7.5, seed=24, num_images_per_prompt=2,
          strength=0.5)),
]


# Cases whose conditioning is measured and recorded: the largest relative change of any step
# latent when the initial latents change by 1e-6 (relative). It must stay under 1e-4, a tenth of
# the step tolerance, or float32 rounding differences alone could fail an exact implementation.
CONDITIONING = {"txt2img-ddim-clip", "txt2img-ddim-thresh"}
PERTURBATION = 1e-6


def conditioning(pipe, seed, call, shape):
    """Step latents of two runs from the same initial latents, the second perturbed by
    PERTURBATION (relative): max over steps of max|a - b| / max|a|."""
    lat0 = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))
    wiggle = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(5))
    runs = []
    for eps in (0.0, PERTURBATION):
        steps = []
        pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(seed), output_type="latent",
             latents=lat0 * (1 + eps * wiggle),
             callback_on_step_end=lambda p, i, t, kw: (steps.append(kw["latents"].clone()), kw)[1],
             callback_on_step_end_tensor_inputs=["latents"], **call)
        runs.append(steps)
    return [((a - b).abs().max() / a.abs().max()).item() for a, b in zip(*runs)]


def run(name, model, cls, overrides, call):
    call = dict(call)
    seed = call.pop("seed")
    img2img = "strength" in call
    Pipe = StableDiffusionImg2ImgPipeline if img2img else StableDiffusionPipeline
    pipe = Pipe.from_pretrained(os.path.join(fixtures, "models", model), torch_dtype=torch.float32,
                                safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = cls.from_config(pipe.scheduler.config, **overrides)
    steps = []

    def on_step_end(p, i, t, kw):
        steps.append(kw["latents"].detach().clone())
        return kw

    extra = {}
    if img2img:
        extra["image"] = Image.open(os.path.join(fixtures, "golden", "img2img-init.png")).convert("RGB")
    out = pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(seed), output_type="np",
               callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"],
               **extra, **call)
    images = torch.from_numpy(np.ascontiguousarray(out.images)).to(torch.float32)
    step_latents = torch.stack(steps).to(torch.float32).contiguous()
    assert torch.isfinite(step_latents).all() and torch.isfinite(images).all(), name

    config = {k: v for k, v in pipe.scheduler.config.items() if not k.startswith("_")}
    config = json.loads(json.dumps(config, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))
    meta = {
        "prompt": PROMPT,
        "negative_prompt": call.get("negative_prompt", ""),
        "num_inference_steps": call["num_inference_steps"],
        "guidance_scale": call["guidance_scale"],
        "seed": seed,
        "model": model,
        "scheduler": cls.__name__,
        "scheduler_overrides": overrides,
        "scheduler_config": config,
        "num_images_per_prompt": call.get("num_images_per_prompt", 1),
        "timesteps": [float(t) for t in pipe.scheduler.timesteps],
        "versions": VERSIONS,
        "pipeline": Pipe.__name__,
        "generator": "tools/reference/make_pipeline_references.py",
    }
    if "eta" in call:
        meta["eta"] = call["eta"]
    if name in CONDITIONING:
        sens = conditioning(pipe, seed, call, tuple(step_latents.shape[1:]))
        meta["conditioning"] = {"perturbation": PERTURBATION, "step_latent_rel_change": sens}
        print("%s: conditioning, max step change %.3g for a %g perturbation" % (
            name, max(sens), PERTURBATION))
        assert max(sens) < 1e-4, (name, sens)
    if img2img:
        meta["strength"] = call["strength"]
        meta["init_image"] = "golden/img2img-init.png"
    else:
        meta["height"] = int(images.shape[1])
        meta["width"] = int(images.shape[2])
    path = os.path.join(out_dir, "pipe-%s.safetensors" % name)
    save_file({"step_latents": step_latents, "images": images}, path,
              metadata={"json": json.dumps(meta)})
    for n, img in enumerate(pipe.numpy_to_pil(out.images)):
        img.save(os.path.join(out_dir, "%s-%d.png" % (name, n)))
    size = os.path.getsize(path)
    assert size <= 2 * 1024 * 1024, (path, size)
    print("%-28s %s evaluations %d, images %s, %d bytes" % (
        name, cls.__name__, step_latents.shape[0], tuple(images.shape), size))


if __name__ == "__main__":
    torch.set_num_threads(2)
    os.makedirs(out_dir, exist_ok=True)
    for case in CASES:
        if not only or case[0] in only:
            run(*case)
