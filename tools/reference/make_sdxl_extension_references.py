"""Writes the SDXL extension references under tests/data/reference/: diffusers'
StableDiffusionXLInpaintPipeline (the fixtures' tiny-sdxl, an ordinary 4-channel UNet: the re-noised
original blended back outside the mask each step; diffusers' default strength 0.9999 and a lower
one), StableDiffusionXLControlNetPipeline (a text_time ControlNet shaped for tiny-sdxl with the
fixtures' rule weights; plain, and guess mode with a guidance window) and its image-to-image and
inpainting pipelines (the control image: the init image mirrored, inputs/control-mirrored-sdxl.png) and textual inversion with an
A1111 SDXL embedding file (`clip_l` and `clip_g` vectors, loaded into both text encoders as
diffusers' docs load such files).

Inputs made here, deterministically, under tests/data/reference/inputs/: the embedding file
`tinyxl.safetensors`, and torch-pickled copies of make_extension_references.py's SD 1.x embeddings
as people download them: `pt/tinystyle.pt` (A1111's training output: string_to_token,
string_to_param, name, step, sd_checkpoint, sd_checkpoint_name; the vectors of
`tinystyle.safetensors`) and `pt/tiny-token.bin` (diffusers' save_textual_inversion layout of
`tiny-token.safetensors`: {token: vectors}). The ControlNet's weights are the fixtures' rule (crc32 of the key seeds
randn; README of ../shared/fixtures); its config is recorded in the case's metadata
(`controlnet_config`), and the tests build the same folder.

Case format: make_pipeline_references.py's (step_latents over every model evaluation, images;
metadata `json` with the call arguments, timesteps and versions). CPU, float32. Needs torch,
diffusers, transformers, safetensors, numpy, PIL.

Usage: python make_sdxl_extension_references.py [<shared/fixtures> [<out dir> [inputs]]]
  ("" for a default directory; "inputs": only the input files)
"""
import json
import math
import os
import sys
import zlib

import diffusers
import numpy as np
import torch
import transformers
from diffusers import (ControlNetModel, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                       StableDiffusionXLControlNetImg2ImgPipeline,
                       StableDiffusionXLControlNetInpaintPipeline,
                       StableDiffusionXLControlNetPipeline, StableDiffusionXLInpaintPipeline,
                       StableDiffusionXLPipeline)
from PIL import Image
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
fixtures = (sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else
            os.path.join(ROOT, "..", "shared", "fixtures"))
out_dir = (sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else
           os.path.join(ROOT, "tests", "data", "reference"))
BASE = os.path.join(fixtures, "models", "tiny-sdxl")
PROMPT = "a photo of an astronaut riding a horse on mars"
INIT = "golden/img2img-init.png"
MASK = "golden/inpaint-mask.png"
TI_FILE = "inputs/tinyxl.safetensors"
CONTROL_MIRRORED_XL = "inputs/control-mirrored-sdxl.png"
VERSIONS = {"torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__}
SCHEDULERS = {c.__name__: c for c in (EulerDiscreteScheduler, DPMSolverMultistepScheduler)}


class Recorder:
    def __init__(self):
        self.steps, self.timesteps = [], []

    def __call__(self, pipe, i, t, kw):
        self.steps.append(kw["latents"].detach().clone())
        self.timesteps.append(float(t))
        return kw

    def kwargs(self):
        return dict(callback_on_step_end=self, callback_on_step_end_tensor_inputs=["latents"])


def load(Pipe, scheduler, **kw):
    pipe = Pipe.from_pretrained(BASE, dtype=torch.float32, **kw)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = SCHEDULERS[scheduler].from_config(pipe.scheduler.config)
    return pipe


def run(pipe, call, seed, **inputs):
    rec = Recorder()
    out = pipe(PROMPT, generator=torch.Generator().manual_seed(seed), output_type="np", **inputs,
               **call, **rec.kwargs())
    return rec, out.images


def plain(pipe, call, seed, **inputs):
    return pipe(PROMPT, generator=torch.Generator().manual_seed(seed), output_type="np", **inputs,
                **call).images


def write_case(name, rec, images, meta, scheduler):
    config = {k: v for k, v in scheduler.config.items() if not k.startswith("_")}
    config = json.loads(json.dumps(config, default=lambda v: list(v) if isinstance(v, tuple)
                                   else str(v)))
    meta = dict(meta, prompt=meta.get("prompt", PROMPT), timesteps=rec.timesteps,
                scheduler_config=config, model="tiny-sdxl", model_root="fixtures",
                generator="tools/reference/" + os.path.basename(__file__), versions=VERSIONS)
    path = os.path.join(out_dir, f"pipe-{name}.safetensors")
    save_file({"step_latents": torch.stack(rec.steps).to(torch.float32).contiguous(),
               "images": torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32)},
              path, metadata={"json": json.dumps(meta)})
    for n, im in enumerate(images):
        Image.fromarray((im * 255).round().astype("uint8")).save(
            os.path.join(out_dir, f"{name}-{n}.png"))
    spread = float(images.std())
    assert spread > 0.02, (name, "a flat image tests nothing", spread)
    assert os.path.getsize(path) <= 2 * 1024 * 1024, path
    print("wrote", name, len(rec.steps), "evaluations, image std", round(spread, 4))


def maxdiff(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


# ---------------------------------------------------------------------------------------------

def inpaint(name, scheduler, steps, seed, strength=None, count=1):
    pipe = load(StableDiffusionXLInpaintPipeline, scheduler)
    init = Image.open(os.path.join(fixtures, INIT)).convert("RGB")
    mask = Image.open(os.path.join(fixtures, MASK))
    call = dict(num_inference_steps=steps, guidance_scale=5.0, height=128, width=128,
                num_images_per_prompt=count)
    if strength is not None:
        call["strength"] = strength
    rec, images = run(pipe, call, seed, image=init, mask_image=mask)
    m = np.array(mask.convert("L"), np.float32)[None, :, :, None] / 255 >= 0.5
    d = np.abs(images - np.array(init, np.float32)[None] / 255)
    print("  mean |out - init|: kept %.4f, repainted %.4f" % (
        d[np.broadcast_to(~m, d.shape)].mean(), d[np.broadcast_to(m, d.shape)].mean()))
    meta = dict(call, seed=seed, scheduler=scheduler, pipeline=type(pipe).__name__,
                image=INIT, image_root="fixtures", mask_image=MASK, mask_image_root="fixtures",
                mask_blur=0,
                strength=call.get("strength", 0.9999))  # diffusers' default for SDXL inpainting
    write_case(name, rec, images, meta, pipe.scheduler)


def rule_weight(key, shape):
    """The fixtures' weight rule (../shared/fixtures/README.md, golden-full)."""
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    r = torch.randn(shape, generator=g)
    if key.endswith(".weight") and "norm" in key[:-len(".weight")]:
        return 1 + 0.1 * r
    if key.endswith(".bias"):
        return 0.02 * r
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
    return r / math.sqrt(fan_in)


def rule_controlnet(unet):
    """ControlNetModel.from_unet's architecture for tiny-sdxl's UNet, a 4-level conditioning
    embedding (8x), the rule's weights."""
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 32, 32))
    net.load_state_dict({k: rule_weight(k, tuple(v.shape)) for k, v in net.state_dict().items()})
    return net.eval()


def controlnet(name, scheduler, steps, seed, scale, guess_mode=False, start=0.0, end=1.0):
    base = StableDiffusionXLPipeline.from_pretrained(BASE, dtype=torch.float32)
    net = rule_controlnet(base.unet)
    pipe = load(StableDiffusionXLControlNetPipeline, scheduler, controlnet=net)
    control = Image.open(os.path.join(fixtures, INIT)).convert("RGB")
    call = dict(num_inference_steps=steps, guidance_scale=5.0, controlnet_conditioning_scale=scale,
                guess_mode=guess_mode, control_guidance_start=start, control_guidance_end=end)
    rec, images = run(pipe, call, seed, image=control)
    base.scheduler = SCHEDULERS[scheduler].from_config(base.scheduler.config)
    base.set_progress_bar_config(disable=True)
    without = plain(base, dict(num_inference_steps=steps, guidance_scale=5.0, height=128,
                               width=128), seed)
    print("  max |image - image without ControlNet| = %.4g" % maxdiff(images, without))
    assert maxdiff(images, without) > 1e-2, name
    config = {k: v for k, v in dict(net.config).items() if not k.startswith("_")}
    config = json.loads(json.dumps(config, default=lambda v: list(v) if isinstance(v, tuple)
                                   else v))
    config["_class_name"] = "ControlNetModel"
    meta = dict(call, seed=seed, scheduler=scheduler, pipeline=type(pipe).__name__,
                control_images=[INIT], control_images_root=["fixtures"],
                controlnet_config=config, controlnet_weights="fixtures' rule (crc32 + randn)")
    write_case(name, rec, images, meta, pipe.scheduler)


def controlnet_with_image(name, scheduler, steps, seed, strength, masked):
    """StableDiffusionXLControlNetImg2ImgPipeline, or with the fixture mask
    StableDiffusionXLControlNetInpaintPipeline: the init image, its mirror image as the control
    image, 128x128 given explicitly."""
    from PIL import ImageOps
    base = StableDiffusionXLPipeline.from_pretrained(BASE, dtype=torch.float32)
    net = rule_controlnet(base.unet)
    Pipe = (StableDiffusionXLControlNetInpaintPipeline if masked
            else StableDiffusionXLControlNetImg2ImgPipeline)
    pipe = load(Pipe, scheduler, controlnet=net)
    init = Image.open(os.path.join(fixtures, INIT)).convert("RGB")
    control = ImageOps.mirror(init)
    control.save(os.path.join(out_dir, CONTROL_MIRRORED_XL))
    call = dict(num_inference_steps=steps, guidance_scale=5.0, controlnet_conditioning_scale=0.8,
                strength=strength, height=128, width=128)
    inputs = dict(image=init, control_image=control)
    meta = dict(call, seed=seed, scheduler=scheduler, pipeline=type(pipe).__name__,
                image=INIT, image_root="fixtures", control_images=[CONTROL_MIRRORED_XL],
                control_images_root=["reference"], guess_mode=False, control_guidance_start=0.0,
                control_guidance_end=1.0, controlnet_config=None)
    if masked:
        inputs["mask_image"] = Image.open(os.path.join(fixtures, MASK))
        meta.update(mask_image=MASK, mask_image_root="fixtures", mask_blur=0)
    rec, images = run(pipe, call, seed, **inputs)
    config = {k: v for k, v in dict(net.config).items() if not k.startswith("_")}
    config = json.loads(json.dumps(config, default=lambda v: list(v) if isinstance(v, tuple)
                                   else v))
    config["_class_name"] = "ControlNetModel"
    meta["controlnet_config"] = config
    write_case(name, rec, images, meta, pipe.scheduler)


def make_embedding(pipe):
    """An A1111 SDXL embedding: two vectors for each text encoder (clip_l: text_encoder's width,
    clip_g: text_encoder_2's)."""
    g = torch.Generator().manual_seed(1101)
    emb = {"clip_g": torch.randn(2, pipe.text_encoder_2.config.hidden_size, generator=g) * 0.3,
           "clip_l": torch.randn(2, pipe.text_encoder.config.hidden_size, generator=g) * 0.3}
    os.makedirs(os.path.join(out_dir, "inputs"), exist_ok=True)
    save_file({k: v.contiguous() for k, v in emb.items()}, os.path.join(out_dir, TI_FILE))
    return emb


def load_embedding(pipe, emb, token, sign=1.0):
    # As diffusers' docs load A1111 SDXL embeddings: each half into its own encoder.
    pipe.load_textual_inversion(sign * emb["clip_g"], token=token, text_encoder=pipe.text_encoder_2,
                                tokenizer=pipe.tokenizer_2)
    pipe.load_textual_inversion(sign * emb["clip_l"], token=token, text_encoder=pipe.text_encoder,
                                tokenizer=pipe.tokenizer)


def textual_inversion(name, scheduler, steps, seed):
    token = os.path.splitext(os.path.basename(TI_FILE))[0]  # A1111: the file's stem
    prompt = f"{token}, a horse on mars"
    pipe = load(StableDiffusionXLPipeline, scheduler)
    emb = make_embedding(pipe)
    load_embedding(pipe, emb, token)
    call = dict(num_inference_steps=steps, guidance_scale=5.0, height=128, width=128,
                negative_prompt="blurry")
    rec = Recorder()
    images = pipe(prompt, generator=torch.Generator().manual_seed(seed), output_type="np", **call,
                  **rec.kwargs()).images
    expanded = pipe.maybe_convert_prompt(prompt, pipe.tokenizer)
    assert expanded == pipe.maybe_convert_prompt(prompt, pipe.tokenizer_2), expanded
    print("  prompt expanded:", expanded)
    other = load(StableDiffusionXLPipeline, scheduler)
    load_embedding(other, emb, token, sign=-1.0)
    negated = other(prompt, generator=torch.Generator().manual_seed(seed), output_type="np",
                    **call).images
    print("  max |image - image with the embedding negated| = %.4g" % maxdiff(images, negated))
    assert maxdiff(images, negated) > 1e-2, name
    meta = dict(call, prompt=prompt, seed=seed, scheduler=scheduler,
                pipeline=type(pipe).__name__, prompt_expanded=expanded,
                embeddings=[{"file": TI_FILE, "root": "reference", "token": token, "vectors": 2}])
    write_case(name, rec, images, meta, pipe.scheduler)


def make_pickled_embeddings():
    from safetensors import safe_open
    os.makedirs(os.path.join(out_dir, "inputs", "pt"), exist_ok=True)
    a1111 = safe_open(os.path.join(out_dir, "inputs", "tinystyle.safetensors"), "pt")
    torch.save({"string_to_token": {"*": 265},
                "string_to_param": {"*": a1111.get_tensor("emb_params").clone().requires_grad_()},
                "name": "tinystyle", "step": 1500, "sd_checkpoint": "a1b2c3d4",
                "sd_checkpoint_name": "tiny-sd1"},
               os.path.join(out_dir, "inputs", "pt", "tinystyle.pt"))
    d = safe_open(os.path.join(out_dir, "inputs", "tiny-token.safetensors"), "pt")
    torch.save({"<tiny-token>": d.get_tensor("<tiny-token>")},
               os.path.join(out_dir, "inputs", "pt", "tiny-token.bin"))


def main():
    torch.set_num_threads(2)
    make_pickled_embeddings()
    if len(sys.argv) > 3 and sys.argv[3] == "inputs":
        return
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    inpaint("sdxl-inpaint-euler", "EulerDiscreteScheduler", 8, 91)
    inpaint("sdxl-inpaint-strength-dpmpp", "DPMSolverMultistepScheduler", 10, 92, strength=0.6,
            count=2)
    controlnet("sdxl-controlnet-euler", "EulerDiscreteScheduler", 8, 93, 0.8)
    controlnet("sdxl-controlnet-guess-dpmpp", "DPMSolverMultistepScheduler", 8, 94, 0.7,
               guess_mode=True, start=0.1, end=0.7)
    textual_inversion("sdxl-ti-a1111-euler", "EulerDiscreteScheduler", 8, 95)
    controlnet_with_image("sdxl-controlnet-img2img-euler", "EulerDiscreteScheduler", 8, 96, 0.7,
                          False)
    controlnet_with_image("sdxl-controlnet-inpaint-dpmpp", "DPMSolverMultistepScheduler", 8, 97,
                          0.8, True)


if __name__ == "__main__":
    main()
