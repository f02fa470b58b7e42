"""Writes the tiled VAE decode references (diffusers' AutoencoderKL.enable_tiling) under
tests/data/reference/vae-tiling.safetensors, on the fixtures' tiny-sd1 VAE.

Cases (latents from torch.randn with a fixed seed; decode() without scaling_factor, as the pipeline
passes latents / scaling_factor):
- default_tiles: a 24x40 latent with the config's tile size (sample_size 128 -> 16-latent tiles,
  overlap 0.25: tiles every 12 latents, 32-pixel blends, 96-pixel crops), batch 2.
- small_tiles: a 13x21 latent with tile_sample_min_size = 64 and tile_latent_min_size = 8 (what a
  user sets to tile a model whose sample_size would not tile it), batch 1.
- untiled_fits: a 16x16 latent with tiling enabled: no larger than one tile, so decoded whole.

Each case stores `<case>.latents` and `<case>.decoded`; metadata `json` has the tile settings and
versions. CPU, float32.

Usage: python make_vae_tiling_references.py [<shared/fixtures> [<out dir>]]
"""
import json
import os
import sys

import diffusers
import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
fixtures = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "fixtures")
out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests", "data", "reference")

vae = AutoencoderKL.from_pretrained(os.path.join(fixtures, "models", "tiny-sd1", "vae"))
vae.eval()
vae.enable_tiling()
default_sample, default_latent = vae.tile_sample_min_size, vae.tile_latent_min_size

CASES = [
    ("default_tiles", (2, 4, 24, 40), 1, None),
    ("small_tiles", (1, 4, 13, 21), 2, (64, 8)),
    ("untiled_fits", (1, 4, 16, 16), 3, None),
]
tensors, meta = {}, {}
with torch.no_grad():
    for name, shape, seed, tiles in CASES:
        vae.tile_sample_min_size, vae.tile_latent_min_size = tiles or (default_sample,
                                                                       default_latent)
        latents = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        decoded = vae.decode(latents).sample
        tensors[name + ".latents"] = latents.contiguous()
        tensors[name + ".decoded"] = decoded.contiguous()
        meta[name] = {"tile_sample_min_size": vae.tile_sample_min_size,
                      "tile_latent_min_size": vae.tile_latent_min_size,
                      "tile_overlap_factor": vae.tile_overlap_factor, "seed": seed}

meta = {"cases": meta, "model": "tiny-sd1/vae", "model_root": "fixtures",
        "generator": "tools/reference/" + os.path.basename(__file__),
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__}}
save_file(tensors, os.path.join(out_dir, "vae-tiling.safetensors"), metadata={"json": json.dumps(meta)})
print("wrote", os.path.join(out_dir, "vae-tiling.safetensors"))
