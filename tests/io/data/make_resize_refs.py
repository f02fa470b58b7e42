#!/usr/bin/env python3
"""Writes resize_refs.safetensors: Pillow LANCZOS resizes of small synthetic RGB images.

Reference data for tests/io/test_image_resize.cpp (diffuse's resize_lanczos must reproduce every
byte). Needs only Pillow (not a project dependency): `apt-get install python3-pil`, then run
`python3 tests/io/data/make_resize_refs.py` from the repository root. The sources are synthesised
deterministically (gradients, a pseudo-random pattern, saturated blocks that make Lanczos ringing
clip), so the file can be regenerated and compared.

Layout: tensors "src/<name>" (uint8 [h, w, 3]) and "out/<case>" (uint8 [h, w, 3]); metadata
"case/<case>" = "<src name>" names each case's source; "pillow" is the version used.
"""
import json
import struct
import sys
from pathlib import Path

import PIL
from PIL import Image


def lcg_bytes(seed, n):
    """Deterministic pseudo-random bytes (64-bit LCG, high byte)."""
    out = bytearray(n)
    s = seed
    for i in range(n):
        s = (s * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out[i] = s >> 56
    return out


def synth(w, h, seed):
    """Gradients + noise + saturated blocks (sharp edges make Lanczos overshoot past 0 and 255)."""
    noise = lcg_bytes(seed, w * h * 3)
    px = bytearray(w * h * 3)
    for y in range(h):
        for x in range(w):
            i = (y * w + x) * 3
            r = (x * 255) // max(w - 1, 1)
            g = (y * 255) // max(h - 1, 1)
            b = ((x + y) * 37) & 255
            region = ((x * 4) // max(w, 1) + (y * 4) // max(h, 1)) % 4
            if region == 0:  # pure noise
                v = (noise[i], noise[i + 1], noise[i + 2])
            elif region == 1:  # smooth gradients
                v = (r, g, b)
            elif region == 2:  # black/white checker, 3-pixel cells
                c = 255 if ((x // 3) + (y // 3)) % 2 else 0
                v = (c, 255 - c, c)
            else:  # gradient plus light noise
                v = tuple(min(255, max(0, c + (n & 31) - 16)) for c, n in zip((r, g, b), noise[i:i + 3]))
            px[i:i + 3] = bytes(v)
    return Image.frombytes("RGB", (w, h), bytes(px))


SOURCES = {
    "a128x128": (128, 128, 1),
    "b37x29": (37, 29, 2),
    "c1x40": (1, 40, 3),
    "d64x48": (64, 48, 4),
}

# case name -> (source, out width, out height)
CASES = {
    "down_77x50": ("a128x128", 77, 50),
    "down_strong_10x7": ("a128x128", 10, 7),
    "vertical_only_128x45": ("a128x128", 128, 45),
    "horizontal_only_51x128": ("a128x128", 51, 128),
    "to_one_pixel_wide_1x13": ("a128x128", 1, 13),
    "up_128x96": ("b37x29", 128, 96),
    "up_vertical_only_37x64": ("b37x29", 37, 64),
    "one_pixel_wide_up_6x17": ("c1x40", 6, 17),
    "same_size_64x48": ("d64x48", 64, 48),
    "mixed_up_down_80x20": ("d64x48", 80, 20),
}


def main():
    out_path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name(
        "resize_refs.safetensors")
    images = {}
    meta = {"pillow": PIL.__version__}
    for name, (w, h, seed) in SOURCES.items():
        images["src/" + name] = synth(w, h, seed)
    for case, (src, w, h) in CASES.items():
        images["out/" + case] = images["src/" + src].resize((w, h), resample=Image.LANCZOS)
        meta["case/" + case] = src

    header = {"__metadata__": meta}
    blobs = []
    offset = 0
    for name, im in images.items():
        data = im.tobytes()
        assert im.mode == "RGB" and len(data) == im.width * im.height * 3
        header[name] = {"dtype": "U8", "shape": [im.height, im.width, 3],
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # data section 8-byte aligned
    with open(out_path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    print(f"wrote {out_path}: {len(CASES)} cases, {8 + len(head) + offset} bytes")


if __name__ == "__main__":
    main()
