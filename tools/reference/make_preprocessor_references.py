"""Writes tests/data/reference/canny.safetensors: OpenCV's cv2.Canny (apertureSize 3, L2gradient
false, the call diffusers' ControlNet docs and A1111's sd-webui-controlnet "canny" module make) on
RGB images: the fixtures' init image, tests/data/reference/inputs/crop-image-192x144.png, and a
synthetic 70x50 image (a gradient, shapes and seeded noise: every gradient direction, ties, edges
touching the border). Per case `<case>.image` (uint8 HxWx3 RGB input) and `<case>.edges` (uint8
HxW); metadata `json`: per case the low and high thresholds as passed (one pair swapped, one
fractional).

Needs opencv-python-headless, numpy, pillow, safetensors, torch.
Usage: python make_preprocessor_references.py [<shared/fixtures> [<out dir>]]
"""
import json
import os
import sys

import cv2
import numpy as np
import PIL
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
fixtures = (sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else
            os.path.join(ROOT, "..", "shared", "fixtures"))
out_dir = (sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else
           os.path.join(ROOT, "tests", "data", "reference"))


def synthetic():
    rng = np.random.default_rng(1301)
    x = np.linspace(0, 255, 70)[None, :, None] * np.ones((50, 1, 3))
    im = Image.fromarray(x.astype(np.uint8))
    d = ImageDraw.Draw(im)
    d.ellipse((5, 5, 40, 35), fill=(200, 30, 90))
    d.polygon([(45, 2), (69, 20), (50, 49)], fill=(10, 220, 40))
    d.line((0, 49, 69, 0), fill=(255, 255, 255), width=2)
    a = np.array(im).astype(np.int16) + rng.integers(-20, 21, size=(50, 70, 3))
    return np.clip(a, 0, 255).astype(np.uint8)


def main():
    init = np.array(Image.open(os.path.join(fixtures, "golden", "img2img-init.png")).convert("RGB"))
    crop = np.array(Image.open(os.path.join(out_dir, "inputs", "crop-image-192x144.png"))
                    .convert("RGB"))
    cases = [("init", init, 20, 60), ("init_high_low", init, 60, 25), ("crop", crop, 30, 10),
             ("synthetic", synthetic(), 100, 200), ("synthetic_frac", synthetic(), 30.7, 90.2)]
    tensors, meta = {}, {}
    for name, image, low, high in cases:
        edges = cv2.Canny(np.ascontiguousarray(image), low, high)
        assert edges.any() and not edges.all(), name
        tensors[f"{name}.image"] = torch.from_numpy(np.array(image, copy=True))
        tensors[f"{name}.edges"] = torch.from_numpy(np.ascontiguousarray(edges))
        meta[name] = {"low": low, "high": high}
        print("%-15s %dx%d, %d edge pixels" % (name, image.shape[1], image.shape[0],
                                              int((edges > 0).sum())))
    path = os.path.join(out_dir, "canny.safetensors")
    save_file(tensors, path, metadata={"json": json.dumps({
        "cases": meta, "generator": "tools/reference/make_preprocessor_references.py",
        "versions": {"opencv": cv2.__version__, "numpy": np.__version__,
                     "pillow": PIL.__version__}})})
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
