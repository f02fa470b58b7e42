"""Writes the few-step SDXL references (SDXL-Turbo and SDXL-Lightning as their model cards run them)
under tests/data/reference/, on the fixtures' tiny-sdxl: diffusers' StableDiffusionXLPipeline and
StableDiffusionXLImg2ImgPipeline with `timestep_spacing="trailing"` schedulers and guidance 0
(classifier-free guidance off).

- sdxl-turbo-eulera-1step: EulerAncestralDiscreteScheduler (trailing), 1 step, guidance 0 (Turbo).
- sdxl-lightning-euler-4step: EulerDiscreteScheduler (trailing), 4 steps, guidance 0 (Lightning).
- sdxl-turbo-img2img-eulera: image-to-image, 2 steps at strength 0.5 (one step runs), guidance 0.

Case format: make_pipeline_references.py's (step_latents, images, metadata `json` with the call
arguments, timesteps, scheduler config and versions). CPU, float32.

Usage: python make_sdxl_few_step_references.py [<shared/fixtures> [<out dir>]]
"""
import json
import os
import sys

import diffusers
import numpy as np
import torch
import transformers
from diffusers import (EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,
                       StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline)
from PIL import Image
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
fixtures = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "fixtures")
out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests", "data", "reference")
BASE = os.path.join(fixtures, "models", "tiny-sdxl")
PROMPT = "a photo of an astronaut riding a horse on mars"
VERSIONS = {"torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__}


def run(pipe, scheduler_class, name, call, extra_meta):
    pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config,
                                                 timestep_spacing="trailing")
    steps, timesteps = [], []

    def on_step_end(p, i, t, kw):
        steps.append(kw["latents"].detach().clone())
        timesteps.append(float(t))
        return kw

    seed = call.pop("seed")
    out = pipe(PROMPT, generator=torch.Generator().manual_seed(seed), output_type="np",
               callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"],
               **call)
    config = {k: v for k, v in pipe.scheduler.config.items() if not k.startswith("_")}
    config = json.loads(json.dumps(config, default=lambda v: list(v) if isinstance(v, tuple)
                                   else str(v)))
    call.pop("image", None)
    meta = dict(call, **extra_meta, seed=seed, prompt=PROMPT, model="tiny-sdxl",
                model_root="fixtures", scheduler=scheduler_class.__name__,
                timestep_spacing="trailing", scheduler_config=config, timesteps=timesteps,
                generator="tools/reference/" + os.path.basename(__file__), versions=VERSIONS)
    images = out.images
    save_file({"step_latents": torch.stack(steps).to(torch.float32).contiguous(),
               "images": torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32)},
              os.path.join(out_dir, f"pipe-{name}.safetensors"), metadata={"json": json.dumps(meta)})
    Image.fromarray((images[0] * 255).round().astype("uint8")).save(
        os.path.join(out_dir, f"{name}-0.png"))
    assert float(images.std()) > 0.02, (name, "a flat image tests nothing")
    print("wrote", name, len(steps), "evaluations, timesteps", timesteps)


def main():
    txt2img = StableDiffusionXLPipeline.from_pretrained(BASE, dtype=torch.float32)
    txt2img.set_progress_bar_config(disable=True)
    run(txt2img, EulerAncestralDiscreteScheduler, "sdxl-turbo-eulera-1step",
        dict(num_inference_steps=1, guidance_scale=0.0, height=128, width=128, seed=81),
        {"pipeline": "StableDiffusionXLPipeline"})
    run(txt2img, EulerDiscreteScheduler, "sdxl-lightning-euler-4step",
        dict(num_inference_steps=4, guidance_scale=0.0, height=128, width=128, seed=82),
        {"pipeline": "StableDiffusionXLPipeline"})
    img2img = StableDiffusionXLImg2ImgPipeline.from_pretrained(BASE, dtype=torch.float32)
    img2img.set_progress_bar_config(disable=True)
    init = Image.open(os.path.join(fixtures, "golden", "img2img-init.png")).convert("RGB")
    run(img2img, EulerAncestralDiscreteScheduler, "sdxl-turbo-img2img-eulera",
        dict(image=init, num_inference_steps=2, strength=0.5, guidance_scale=0.0, seed=83),
        {"pipeline": "StableDiffusionXLImg2ImgPipeline", "image": "golden/img2img-init.png",
         "image_root": "fixtures"})


if __name__ == "__main__":
    main()
