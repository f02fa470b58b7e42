"""Writes tests/data/reference/pipe-lora-sdxl-euler.safetensors + lora-sdxl-euler-0.png: diffusers'
StableDiffusionXLPipeline on the fixtures' tiny-sdxl with a diffusers/PEFT LoRA (made here,
seeded, saved as inputs/lora-peft-tiny-sdxl.safetensors) on the UNet's attention projections and
both text encoders' q/k/v/out projections, scale 0.7 through set_adapters. The format is
make_pipeline_references.py's (step_latents, images, metadata `json` with loras = [{file, root,
scale, format}]). CPU, float32. Needs torch, diffusers, peft, transformers, safetensors, numpy.

Usage: python make_sdxl_lora_reference.py [<shared/fixtures> [<out dir>]]
"""
import json
import os
import sys

import diffusers
import numpy as np
import peft
import torch
import transformers
from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
from PIL import Image
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
fixtures = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "fixtures")
out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests", "data", "reference")
NAME, SEED, STEPS, SCALE, RANK = "lora-sdxl-euler", 61, 6, 0.7, 4
LORA_REL = "inputs/lora-peft-tiny-sdxl.safetensors"

pipe = StableDiffusionXLPipeline.from_pretrained(os.path.join(fixtures, "models", "tiny-sdxl"),
                                                 dtype=torch.float32)
pipe.set_progress_bar_config(disable=True)
pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)

# The LoRA: every Linear q/k/v/out projection, named as diffusers saves its own format.
g = torch.Generator("cpu").manual_seed(1061)
lora = {}
targets = [("unet", pipe.unet, ("to_q", "to_k", "to_v", "to_out.0")),
           ("text_encoder", pipe.text_encoder, ("q_proj", "k_proj", "v_proj", "out_proj")),
           ("text_encoder_2", pipe.text_encoder_2, ("q_proj", "k_proj", "v_proj", "out_proj"))]
for prefix, model, suffixes in targets:
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(suffixes):
            if prefix != "unet" and not name.startswith("text_model."):
                name = "text_model." + name  # the usual spelling of text-encoder LoRA keys
            lora[f"{prefix}.{name}.lora_A.weight"] = torch.randn(
                (RANK, module.in_features), generator=g) * 0.2
            lora[f"{prefix}.{name}.lora_B.weight"] = torch.randn(
                (module.out_features, RANK), generator=g) * 0.2
os.makedirs(os.path.join(out_dir, "inputs"), exist_ok=True)
save_file(lora, os.path.join(out_dir, LORA_REL))

call = dict(num_inference_steps=STEPS, guidance_scale=5.0, height=128, width=128)
prompt = "a photo of an astronaut riding a horse on mars"
base = pipe(prompt, generator=torch.Generator("cpu").manual_seed(SEED), output_type="np",
            **call).images
pipe.load_lora_weights(os.path.join(out_dir, LORA_REL), adapter_name="p")
pipe.set_adapters(["p"], [SCALE])
steps, ts = [], []


def on_step_end(p, i, t, kw):
    steps.append(kw["latents"].detach().clone())
    ts.append(float(t))
    return kw


out = pipe(prompt, generator=torch.Generator("cpu").manual_seed(SEED), output_type="np",
           callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"], **call)
diff = float(np.abs(out.images - base).max())
assert diff > 1e-2, ("the LoRA changed nothing", diff)
print("max difference with / without the LoRA:", diff)
images = torch.from_numpy(np.ascontiguousarray(out.images)).to(torch.float32)
config = {k: v for k, v in pipe.scheduler.config.items() if not k.startswith("_")}
config = json.loads(json.dumps(config, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))
meta = {"prompt": prompt, "num_inference_steps": STEPS, "guidance_scale": 5.0, "seed": SEED,
        "height": 128, "width": 128, "model": "tiny-sdxl", "scheduler": "EulerDiscreteScheduler",
        "scheduler_config": config, "timesteps": ts,
        "loras": [{"file": LORA_REL, "root": "reference", "scale": SCALE, "format": "peft"}],
        "pipeline": "StableDiffusionXLPipeline", "generator": "tools/reference/" +
        os.path.basename(__file__),
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__, "peft": peft.__version__}}
save_file({"step_latents": torch.stack(steps).to(torch.float32).contiguous(), "images": images},
          os.path.join(out_dir, f"pipe-{NAME}.safetensors"), metadata={"json": json.dumps(meta)})
Image.fromarray((out.images[0] * 255).round().astype("uint8")).save(
    os.path.join(out_dir, f"{NAME}-0.png"))
print("wrote", NAME, len(lora), "LoRA tensors")
