"""Writes tests/data/reference/masked-content.safetensors: AUTOMATIC1111's "masked content"
preparations for inpainting, computed by A1111's own code and Pillow:

- `<case>.filled`: modules/masking.py's fill(image, mask) (inpainting_fill 0, "fill"), imported
  from a checkout of AUTOMATIC1111/stable-diffusion-webui given with --a1111 (not part of this
  repository);
- `<case>.latent_region`: the latent mask A1111's StableDiffusionProcessingImg2Img.init makes for
  inpainting_fill 2 and 3 (mask.convert('RGB').resize((w, h)) with Pillow's default filter, first
  channel / 255, np.around), for latents of the image's size / 8.

Inputs per case (uint8 HxWx3): `<case>.image`, `<case>.mask`: the fixtures' init image with the
fixture mask blurred (PIL GaussianBlur 4, soft edges), with an ellipse drawn at another place, and
a 96x72 resize with a mask touching the border. Metadata `json`: the cases, versions.

Usage: python make_masked_content_references.py --a1111 DIR [--fixtures DIR] [--out DIR]
"""
import argparse
import json
import os
import sys

import numpy as np
import PIL
import torch
from PIL import Image, ImageDraw, ImageFilter
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
parser = argparse.ArgumentParser()
parser.add_argument("--a1111", required=True, help="stable-diffusion-webui checkout")
parser.add_argument("--fixtures", default=os.path.join(ROOT, "..", "shared", "fixtures"))
parser.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "reference"))
args = parser.parse_args()
sys.path.insert(0, args.a1111)
from modules import masking  # noqa: E402  (the checkout's; it needs only PIL)


def u8(im):
    return torch.from_numpy(np.array(im.convert("RGB"), dtype=np.uint8)).contiguous()


def latent_region(mask):
    """processing.py: latmask = init_mask.convert('RGB').resize((w, h)); / 255; [0]; np.around."""
    w, h = mask.width // 8, mask.height // 8
    latmask = mask.convert("RGB").resize((w, h))
    latmask = np.moveaxis(np.array(latmask, dtype=np.float32), 2, 0) / 255
    return torch.from_numpy(np.around(latmask[0])).contiguous()


def main():
    init = Image.open(os.path.join(args.fixtures, "golden", "img2img-init.png")).convert("RGB")
    square = Image.open(os.path.join(args.fixtures, "golden", "inpaint-mask.png")).convert("L")
    ellipse = Image.new("L", init.size, 0)
    ImageDraw.Draw(ellipse).ellipse((10, 70, 60, 120), fill=255)
    small = init.resize((96, 72), resample=Image.LANCZOS)
    corner = Image.new("L", (96, 72), 0)
    ImageDraw.Draw(corner).rectangle((70, 0, 95, 30), fill=255)
    cases = {"square_blurred": (init, square.filter(ImageFilter.GaussianBlur(4))),
             "ellipse": (init, ellipse),
             "small_corner": (small, corner.filter(ImageFilter.GaussianBlur(2)))}
    tensors, meta = {}, {}
    for name, (image, mask) in cases.items():
        filled = masking.fill(image, mask)
        region = latent_region(mask)
        assert 0 < float(region.mean()) < 1, name
        tensors.update({f"{name}.image": u8(image), f"{name}.mask": u8(mask),
                        f"{name}.filled": u8(filled), f"{name}.latent_region": region})
        meta[name] = {"size": list(image.size)}
        print("%-15s %dx%d, latent region %.3f of the latents" % (
            name, image.width, image.height, float(region.mean())))
    path = os.path.join(args.out, "masked-content.safetensors")
    save_file(tensors, path, metadata={"json": json.dumps({
        "cases": meta, "generator": "tools/reference/make_masked_content_references.py",
        "versions": {"pillow": PIL.__version__, "numpy": np.__version__}})})
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
