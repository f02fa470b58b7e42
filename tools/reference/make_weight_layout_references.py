"""Weight files as diffusers writes them, for the loader's layout tests (issue 8).

Writes, from the fixture tiny-sd1's VAE (CPU, float32 in; diffusers' own save_pretrained out):
  inputs/vae-bin/             config.json + diffusion_pytorch_model.bin (torch.save zip, float32)
  inputs/vae-fp16-variant/    config.json + diffusion_pytorch_model.fp16.safetensors (float16)
                              + the same float16 weights as sharded .bin:
                              diffusion_pytorch_model.fp16-0000k-of-0000n.bin and
                              diffusion_pytorch_model.bin.index.fp16.json
and inputs/weight-layouts.json with the library versions.

Usage: /opt/refenv/bin/python tools/reference/make_weight_layout_references.py [FIXTURES] [OUT]
"""
import json
import os
import shutil
import sys
import tempfile

import diffusers
import torch
from diffusers import AutoencoderKL

fixtures = sys.argv[1] if len(sys.argv) > 1 else "../shared/fixtures"
out = sys.argv[2] if len(sys.argv) > 2 else "tests/data/reference/inputs"

vae = AutoencoderKL.from_pretrained(os.path.join(fixtures, "models/tiny-sd1/vae"))

bin_dir = os.path.join(out, "vae-bin")
shutil.rmtree(bin_dir, ignore_errors=True)
vae.save_pretrained(bin_dir, safe_serialization=False)

variant_dir = os.path.join(out, "vae-fp16-variant")
shutil.rmtree(variant_dir, ignore_errors=True)
half = vae.to(torch.float16)
half.save_pretrained(variant_dir, variant="fp16", safe_serialization=True)
# save_pretrained removes other weight files of the same name, so the shards go elsewhere first.
with tempfile.TemporaryDirectory() as tmp:
    half.save_pretrained(tmp, variant="fp16", safe_serialization=False, max_shard_size="400KB")
    for name in os.listdir(tmp):
        if name != "config.json":
            shutil.copy(os.path.join(tmp, name), os.path.join(variant_dir, name))

meta = {
    "made_by": "tools/reference/make_weight_layout_references.py",
    "source": "fixtures models/tiny-sd1/vae",
    "diffusers": diffusers.__version__,
    "torch": torch.__version__,
    "files": {d: sorted(os.listdir(os.path.join(out, d))) for d in ("vae-bin", "vae-fp16-variant")},
}
with open(os.path.join(out, "weight-layouts.json"), "w") as f:
    json.dump(meta, f, indent=1)
print(json.dumps(meta, indent=1))
