"""Writes the references of inpainting's "only masked" mode (diffusers' padding_mask_crop) under
tests/data/reference/:

- `mask-crop-ops.safetensors`: diffusers' VaeImageProcessor steps on their own, with Pillow, for
  several image/mask/size combinations (the crop grown to the aspect ratio, clamped at the image's
  edges, filled bands when the crop cannot reach the aspect ratio): per case `<case>.image`,
  `<case>.mask` (the inputs, uint8 HxWx3), `<case>.crop` (x1, y1, x2, y2 of get_crop_region),
  `<case>.image_fill` and `<case>.mask_fill` (image_processor / mask_processor preprocess with
  crops_coords and resize_mode "fill", as uint8 HxWx3 before the [0, 1] scaling; the mask after
  its grey conversion, repeated to 3 channels), `<case>.generated` (an image of the processing
  size standing for the pipeline's output) and `<case>.overlay` (apply_overlay(mask, image,
  generated, crop)). Metadata `json`: per case width, height, pad.
- `pipe-inpaint-crop-<case>.safetensors` + `inpaint-crop-<case>-0.png`:
  StableDiffusionInpaintPipeline(padding_mask_crop=...) on the fixtures' tiny models, output_type
  "pil" (the only one diffusers allows with a crop): step_latents as the other pipeline cases
  (in the crop's space), `images` = the final PIL image / 255 (the original's size).

Inputs made here under tests/data/reference/inputs/: `crop-image-192x144.png` (the fixtures' init
image, Lanczos-resized), `crop-mask-ellipse-192x144.png` (an ellipse, Gaussian-blurred: soft
edges), `crop-mask-wide-192x144.png` (a band across the whole width, hard edges).

CPU, float32. Needs torch, diffusers, transformers, safetensors, numpy, pillow.

Usage: python make_mask_crop_references.py [<shared/fixtures> [<out dir>]]
"""
import json
import os
import sys

import diffusers
import numpy as np
import PIL
import torch
import transformers
from diffusers import DDIMScheduler, EulerDiscreteScheduler, StableDiffusionInpaintPipeline
from diffusers.image_processor import VaeImageProcessor
from PIL import Image, ImageDraw, ImageFilter
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
fixtures = (sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else
            os.path.join(ROOT, "..", "shared", "fixtures"))
out_dir = (sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else
           os.path.join(ROOT, "tests", "data", "reference"))
PROMPT = "a photo of an astronaut riding a horse on mars"
VERSIONS = {"torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "pillow": PIL.__version__,
            "numpy": np.__version__}
IMAGE = "inputs/crop-image-192x144.png"
ELLIPSE = "inputs/crop-mask-ellipse-192x144.png"
WIDE = "inputs/crop-mask-wide-192x144.png"


def ref(rel):
    return os.path.join(out_dir, rel)


def make_inputs():
    os.makedirs(ref("inputs"), exist_ok=True)
    init = Image.open(os.path.join(fixtures, "golden", "img2img-init.png")).convert("RGB")
    init.resize((192, 144), resample=Image.LANCZOS).save(ref(IMAGE))
    ellipse = Image.new("L", (192, 144), 0)
    ImageDraw.Draw(ellipse).ellipse((120, 20, 170, 60), fill=255)
    ellipse.filter(ImageFilter.GaussianBlur(3)).save(ref(ELLIPSE))
    wide = Image.new("L", (192, 144), 0)
    ImageDraw.Draw(wide).rectangle((0, 100, 191, 120), fill=255)
    wide.save(ref(WIDE))


def u8(im):
    return torch.from_numpy(np.array(im.convert("RGB"), dtype=np.uint8)).contiguous()


def ops_case(tensors, meta, name, image, mask, width, height, pad):
    image_processor = VaeImageProcessor(vae_scale_factor=8)
    mask_processor = VaeImageProcessor(vae_scale_factor=8, do_normalize=False, do_binarize=True,
                                       do_convert_grayscale=True)
    crop = image_processor.get_crop_region(mask, width, height, pad=pad)
    # preprocess's PIL steps (crop, resize "fill", convert), before the [0, 1] scaling.
    image_fill = image_processor.resize(image.crop(crop), height, width, resize_mode="fill")
    mask_fill = mask_processor.resize(mask.crop(crop), height, width, resize_mode="fill")
    mask_fill = mask_processor.convert_to_grayscale(mask_fill)
    # What preprocess itself returns agrees with those steps.
    got = image_processor.preprocess(image, height=height, width=width, crops_coords=crop,
                                     resize_mode="fill")
    want = torch.from_numpy(np.array(image_fill, np.float32) / 255 * 2 - 1).permute(2, 0, 1)[None]
    assert torch.equal(got, want), name
    got = mask_processor.preprocess(mask, height=height, width=width, crops_coords=crop,
                                    resize_mode="fill")
    want = torch.from_numpy((np.array(mask_fill, np.float32) / 255 >= 0.5).astype(np.float32))
    assert torch.equal(got[0, 0], want), name
    generated = image.resize((width, height), resample=Image.BICUBIC).transpose(
        Image.FLIP_LEFT_RIGHT)
    overlay = image_processor.apply_overlay(mask, image, generated, crop)
    tensors.update({f"{name}.image": u8(image), f"{name}.mask": u8(mask),
                    f"{name}.crop": torch.tensor(crop, dtype=torch.int64),
                    f"{name}.image_fill": u8(image_fill), f"{name}.mask_fill": u8(mask_fill),
                    f"{name}.generated": u8(generated), f"{name}.overlay": u8(overlay)})
    meta[name] = {"width": width, "height": height, "pad": pad}
    print("  %-10s crop %s -> %dx%d" % (name, crop, width, height))


def make_ops():
    image = Image.open(ref(IMAGE))
    ellipse = Image.open(ref(ELLIPSE))
    wide = Image.open(ref(WIDE))
    small = image.resize((96, 72), resample=Image.LANCZOS)
    small_ellipse = ellipse.resize((96, 72), resample=Image.LANCZOS)
    tensors, meta = {}, {}
    ops_case(tensors, meta, "square", small, small_ellipse, 64, 64, 4)
    ops_case(tensors, meta, "landscape", small, small_ellipse, 64, 40, 0)
    ops_case(tensors, meta, "portrait", small, small_ellipse, 40, 64, 12)
    # A band across the whole width: the crop cannot be grown to a square inside the image
    # (filled bands above and below), and for a portrait size it is clamped at the edge.
    small_wide = wide.resize((96, 72), resample=Image.NEAREST)
    ops_case(tensors, meta, "wide_fill", small, small_wide, 48, 48, 2)
    ops_case(tensors, meta, "wide_tall", small, small_wide, 32, 56, 30)
    # The mask touching the image's corner.
    corner = Image.new("L", (96, 72), 0)
    ImageDraw.Draw(corner).rectangle((80, 0, 95, 10), fill=200)
    ops_case(tensors, meta, "corner", small, corner, 56, 40, 6)
    path = ref("mask-crop-ops.safetensors")
    save_file(tensors, path, metadata={"json": json.dumps(
        {"cases": meta, "generator": "tools/reference/make_mask_crop_references.py",
         "versions": VERSIONS})})
    print("wrote", path, os.path.getsize(path), "bytes")


class Recorder:
    def __init__(self):
        self.steps, self.timesteps = [], []

    def __call__(self, pipe, i, t, kw):
        self.steps.append(kw["latents"].detach().clone())
        self.timesteps.append(float(t))
        return kw


def pipeline_case(name, model, cls, steps, seed, mask_rel, pad, strength=None):
    pipe = StableDiffusionInpaintPipeline.from_pretrained(
        os.path.join(fixtures, "models", model), dtype=torch.float32, safety_checker=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = cls.from_config(pipe.scheduler.config)
    image, mask = Image.open(ref(IMAGE)).convert("RGB"), Image.open(ref(mask_rel))
    call = dict(num_inference_steps=steps, guidance_scale=7.5, padding_mask_crop=pad)
    if strength is not None:
        call["strength"] = strength
    rec = Recorder()
    out = pipe(PROMPT, image=image, mask_image=mask, output_type="pil",
               generator=torch.Generator().manual_seed(seed), callback_on_step_end=rec,
               callback_on_step_end_tensor_inputs=["latents"], **call)
    result = out.images[0]
    assert result.size == image.size, result.size
    plain = np.array(result, np.float32)
    # Outside the crop the original comes back untouched.
    crop = pipe.mask_processor.get_crop_region(mask, 128, 128, pad=pad)
    keep = np.ones(plain.shape[:2], bool)
    keep[crop[1]:crop[3], crop[0]:crop[2]] = False
    assert (plain[keep] == np.array(image, np.float32)[keep]).all(), name
    config = {k: v for k, v in pipe.scheduler.config.items() if not k.startswith("_")}
    config = json.loads(json.dumps(config, default=lambda v: list(v) if isinstance(v, tuple)
                                   else str(v)))
    meta = {"prompt": PROMPT, "negative_prompt": "", "num_inference_steps": steps,
            "guidance_scale": 7.5, "seed": seed, "model": model, "scheduler": cls.__name__,
            "scheduler_config": config, "timesteps": rec.timesteps,
            "pipeline": "StableDiffusionInpaintPipeline", "padding_mask_crop": pad,
            "crop": list(crop), "image": IMAGE, "image_root": "reference",
            "mask_image": mask_rel, "mask_image_root": "reference", "mask_blur": 0,
            "strength": 1.0 if strength is None else strength, "output_type": "pil",
            "generator": "tools/reference/make_mask_crop_references.py", "versions": VERSIONS}
    images = torch.from_numpy(plain / 255)[None].contiguous()
    path = ref(f"pipe-{name}.safetensors")
    save_file({"step_latents": torch.stack(rec.steps).to(torch.float32).contiguous(),
               "images": images}, path, metadata={"json": json.dumps(meta)})
    result.save(ref(f"{name}-0.png"))
    assert os.path.getsize(path) <= 2 * 1024 * 1024, path
    print("wrote", name, "crop", crop, len(rec.steps), "evaluations")


def main():
    torch.set_num_threads(2)
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    make_inputs()
    make_ops()
    pipeline_case("inpaint-crop-ellipse-ddim", "tiny-sd1-inpaint", DDIMScheduler, 8, 111, ELLIPSE,
                  16)
    pipeline_case("inpaint-crop-wide-euler", "tiny-sd1", EulerDiscreteScheduler, 8, 112, WIDE, 4,
                  strength=0.8)


if __name__ == "__main__":
    main()
