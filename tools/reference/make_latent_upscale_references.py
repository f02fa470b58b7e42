"""Writes tests/data/reference/latent-upscale.safetensors: torch.nn.functional.interpolate of a
small latent batch with mode "nearest" and "bilinear" (align_corners=False), the calls
AUTOMATIC1111's latent upscalers make for the hires fix. Checked by
tests/pipeline/test_hires_fix.cpp against diffuse's stages::upscale_latents.

Usage: python make_latent_upscale_references.py [<out dir>]   (CPU, float32; needs torch, safetensors)
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "reference")

x = torch.randn((2, 4, 5, 7), generator=torch.Generator("cpu").manual_seed(0))
tensors = {"input": x}
sizes = [(10, 14), (11, 13), (16, 9), (5, 7)]
for mode in ("nearest", "bilinear"):
    for h, w in sizes:
        kwargs = {} if mode == "nearest" else {"align_corners": False}
        tensors[f"{mode}_{h}x{w}"] = torch.nn.functional.interpolate(x, size=(h, w), mode=mode,
                                                                     **kwargs).contiguous()
meta = {"json": json.dumps({"sizes": sizes, "modes": ["nearest", "bilinear"],
                            "versions": {"torch": torch.__version__}})}
path = os.path.join(out_dir, "latent-upscale.safetensors")
save_file(tensors, path, metadata=meta)
print("wrote", path)
