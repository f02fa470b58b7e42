#!/usr/bin/env python3
"""Writes filter_refs.safetensors: Pillow GaussianBlur and convert("L") of small synthetic images.

Reference data for tests/io/test_image_filters.cpp (diffuse's gaussian_blur and to_grayscale must
reproduce every byte; diffusers' mask processor blurs and converts masks with them). Needs only
Pillow: run `python3 tests/io/data/make_filter_refs.py` from the repository root. The sources are
make_resize_refs.py's deterministic synthetic images.

Layout: tensors "src/<name>" (uint8 [h, w, 3]), "blur/<case>" (uint8 [h, w, 3]) and "gray/<name>"
(uint8 [h, w, 1]); metadata "case/<case>" = "<src name>,<radius>"; "pillow" is the version used.
"""
import json
import struct
import sys
from pathlib import Path

import PIL
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).parent))
from make_resize_refs import synth  # noqa: E402

SOURCES = {"a128x128": (128, 128, 1), "b37x29": (37, 29, 2), "c1x40": (1, 40, 3)}
# case -> (source, radius): fractional and whole radii, a radius wider than the image.
CASES = {
    "a_r0_5": ("a128x128", 0.5),
    "a_r1": ("a128x128", 1),
    "a_r2_5": ("a128x128", 2.5),
    "a_r4": ("a128x128", 4),
    "a_r9": ("a128x128", 9),
    "b_r3": ("b37x29", 3),
    "b_r40": ("b37x29", 40),
    "c_r2": ("c1x40", 2),
}


def main():
    out_path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name(
        "filter_refs.safetensors")
    tensors = {}
    meta = {"pillow": PIL.__version__}
    sources = {name: synth(w, h, seed) for name, (w, h, seed) in SOURCES.items()}
    for name, im in sources.items():
        tensors["src/" + name] = (im.tobytes(), [im.height, im.width, 3])
        gray = im.convert("L")
        tensors["gray/" + name] = (gray.tobytes(), [im.height, im.width, 1])
    for case, (src, radius) in CASES.items():
        out = sources[src].filter(ImageFilter.GaussianBlur(radius))
        tensors["blur/" + case] = (out.tobytes(), [out.height, out.width, 3])
        meta["case/" + case] = f"{src},{radius}"

    header = {"__metadata__": meta}
    blobs, offset = [], 0
    for name, (data, shape) in tensors.items():
        header[name] = {"dtype": "U8", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(out_path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    print(f"wrote {out_path}: {len(CASES)} blur cases, {8 + len(head) + offset} bytes")


if __name__ == "__main__":
    main()
