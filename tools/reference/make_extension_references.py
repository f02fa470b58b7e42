"""Writes tests/data/reference/pipe-<case>.safetensors and <case>-<n>.png for the pipeline
extensions: inpainting (4- and 9-channel UNets, strength, masks that need resizing, a blurred
mask), ControlNet (two nets, a guidance window, guess mode, a control image that needs resizing;
image-to-image and inpainting with a ControlNet: StableDiffusionControlNetImg2ImgPipeline and
StableDiffusionControlNetInpaintPipeline, 9- and 4-channel UNets),
LoRA (kohya at a scale, a diffusers/PEFT LoRA with a text-encoder part, a kohya LoCon with conv and
text-encoder layers, two adapters at once) and textual inversion (diffusers and A1111 files).
The input files the cases need that the fixtures do not hold (masks, control images, LoRA and
embedding files) are made here, deterministically, under tests/data/reference/inputs/.

Usage: python make_extension_references.py [<shared/fixtures> [<out dir>]] [<case> ...]
  defaults: ../shared/fixtures relative to the project root, and tests/data/reference/ ("" also
  means the default). Case names select cases (all when none is given); the inputs/ files are
  always (re)made, byte for byte the same.

Format: as tools/reference/make_pipeline_references.py (tests/common/pipeline_check.h reads it):
- `step_latents` [evaluations, batch, 4, h, w]: the latents after each step (callback_on_step_end;
  for a 4-channel inpaint UNet that is after the blend with the re-noised original);
- `images` [batch, H, W, 3] in [0, 1] (output_type="np"); `<case>-<n>.png` is round(images * 255);
- metadata `json`: prompt, negative_prompt, num_inference_steps, guidance_scale, seed, model (folder
  under the fixtures' models/), scheduler (class), scheduler_overrides, scheduler_config,
  timesteps (the scheduler's whole schedule), timesteps_run (the ones the loop ran: strength cuts
  the schedule), height/width and strength when passed, versions, pipeline, and per kind:
  - inpaint: image, mask_image, strength (always), mask_blur (0 or the blur factor), plus for a
    blurred mask `mask_blurred` (the blurred mask, to check the blur alone);
  - controlnet: controlnets (model folders), control_images, controlnet_conditioning_scale (list),
    control_guidance_start, control_guidance_end (as passed), guess_mode, controlnet_keep (the
    per-step keep factors diffusers computed);
  - lora: loras = [{file, root, scale, format, adapter_name, alpha_over_rank}];
  - textual inversion: embeddings = [{file, root, token, vectors}], prompt_expanded /
    negative_prompt_expanded (after diffusers' multi-vector expansion), input_ids /
    negative_input_ids (the token ids the text encoder saw).
  Every path is relative to a root named next to it: for a field `X` the field `X_root` (a list
  for a list of paths), inside a dict the key `root`; root "fixtures" = ../shared/fixtures,
  "reference" = tests/data/reference/.
CPU, float32, generator=torch.Generator("cpu").manual_seed(seed). Needs torch, diffusers, peft,
transformers, safetensors, numpy, pillow.
"""
import json
import os
import sys

import diffusers
import numpy as np
import peft
import PIL
import torch
import transformers
from diffusers import (ControlNetModel, DDIMScheduler, DPMSolverMultistepScheduler,
                       EulerDiscreteScheduler, PNDMScheduler, StableDiffusionControlNetImg2ImgPipeline,
                       StableDiffusionControlNetInpaintPipeline, StableDiffusionControlNetPipeline,
                       StableDiffusionInpaintPipeline, StableDiffusionPipeline)
from peft.tuners.tuners_utils import BaseTunerLayer
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_args = sys.argv[1:]
PROMPT = "a photo of an astronaut riding a horse on mars"
VERSIONS = {"torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__,
            "numpy": np.__version__, "pillow": PIL.__version__}
SCRIPT = "tools/reference/make_extension_references.py"

INIT = "golden/img2img-init.png"        # fixtures
MASK = "golden/inpaint-mask.png"        # fixtures
CONTROLNET = "tiny-controlnet"          # fixtures models/
KOHYA = "models/tiny-sd1-lora-kohya.safetensors"  # fixtures

# Inputs this script makes (relative to out_dir).
MASK_100x72 = "inputs/inpaint-mask-100x72.png"
MASK_BLUR4 = "inputs/inpaint-mask-blur4.png"
MASK_ELLIPSE = "inputs/inpaint-mask-ellipse-100x72.png"
CONTROL_MIRRORED = "inputs/control-mirrored.png"
CONTROL_96x64 = "inputs/control-96x64.png"
LORA_PEFT = "inputs/lora-peft-tiny-sd1.safetensors"
LORA_LOCON = "inputs/lora-kohya-locon-te.safetensors"
TI_DIFFUSERS = "inputs/tiny-token.safetensors"
TI_A1111 = "inputs/tinystyle.safetensors"


def fx(rel):
    return os.path.join(fixtures, rel)


def ref(rel):
    return os.path.join(out_dir, rel)


def model_dir(model):
    return os.path.join(fixtures, "models", model)


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

def make_images():
    mask = Image.open(fx(MASK)).convert("L")
    mask.resize((100, 72), resample=Image.LANCZOS).save(ref(MASK_100x72))
    # diffusers' own blur (PIL GaussianBlur, radius 4), on the fixture mask as loaded (mode L).
    from diffusers.image_processor import VaeImageProcessor  # pipe.mask_processor's class
    VaeImageProcessor.blur(mask, blur_factor=4).save(ref(MASK_BLUR4))
    # The fixture mask (a 64x64 square) survives 128 -> 100x72 -> 128 with any filter, so a
    # second, round mask drawn at 100x72 checks the filter of the pipeline's resize too.
    from PIL import ImageDraw
    ellipse = Image.new("L", (100, 72), 0)
    ImageDraw.Draw(ellipse).ellipse((18, 10, 83, 61), fill=255)
    ellipse.save(ref(MASK_ELLIPSE))
    init = Image.open(fx(INIT)).convert("RGB")
    init.transpose(Image.FLIP_LEFT_RIGHT).save(ref(CONTROL_MIRRORED))
    init.resize((96, 64), resample=Image.LANCZOS).save(ref(CONTROL_96x64))


def load_components():
    from transformers import CLIPTextModel
    from diffusers import UNet2DConditionModel
    unet = UNet2DConditionModel.from_pretrained(os.path.join(model_dir("tiny-sd1"), "unet"))
    te = CLIPTextModel.from_pretrained(os.path.join(model_dir("tiny-sd1"), "text_encoder"))
    return unet, te


def te_module_path(name):
    # Recent transformers flatten CLIPTextModel (no `text_model.` level); LoRA files name the
    # text encoder's modules as transformers 4.x did: text_model.encoder.layers.N....
    return name if name.startswith("text_model.") else "text_model." + name


def make_lora_peft():
    """diffusers/PEFT layout: unet.<module>.lora_A.weight [r, in] / .lora_B.weight [out, r] for
    to_q/to_k/to_v/to_out.0 of every UNet attention; text_encoder.text_model.encoder.layers.N.
    self_attn.{q,k,v,out}_proj.lora_A/B.weight for every CLIP layer. No alphas: alpha = rank."""
    unet, te = load_components()
    g = torch.Generator().manual_seed(1001)
    rank = 4
    sd = {}
    targets = []
    for name, mod in unet.named_modules():
        if name.endswith((".to_q", ".to_k", ".to_v", ".to_out.0")):
            targets.append(("unet." + name, mod))
    for name, mod in te.named_modules():
        if name.endswith(("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                          "self_attn.out_proj")):
            targets.append(("text_encoder." + te_module_path(name), mod))
    for key, mod in targets:  # named_modules order; A then B per module
        assert isinstance(mod, torch.nn.Linear), key
        sd[key + ".lora_A.weight"] = torch.randn(rank, mod.in_features, generator=g) * 0.2
        sd[key + ".lora_B.weight"] = torch.randn(mod.out_features, rank, generator=g) * 0.2
    save_file({k: v.contiguous() for k, v in sd.items()}, ref(LORA_PEFT))


def kohya_name(prefix, module_name):
    return prefix + module_name.replace(".", "_")


def make_lora_locon():
    """kohya layout, rank 4, alpha 2 (scale alpha / rank = 0.5): <name>.lora_down.weight,
    <name>.lora_up.weight, <name>.alpha. Linear: down [r, in], up [out, r]. Conv (LoCon): down
    [r, in, kh, kw] (the base conv's kernel, stride and padding), up [out, r, 1, 1]."""
    unet, te = load_components()
    g = torch.Generator().manual_seed(1002)
    rank, alpha = 4, 2.0
    unet_modules = []
    for name, mod in unet.named_modules():
        attn = name.startswith("down_blocks.0.attentions.") or name.startswith(
            "mid_block.attentions.0.") or name.startswith("up_blocks.1.attentions.2.")
        if attn and name.endswith((".to_q", ".to_k", ".to_v", ".to_out.0")):
            unet_modules.append(name)
    unet_modules += [
        # feed-forward of one transformer block (GEGLU proj and output)
        "down_blocks.1.attentions.1.transformer_blocks.0.ff.net.0.proj",
        "down_blocks.1.attentions.1.transformer_blocks.0.ff.net.2",
        # 1x1 conv projections of the transformers
        "down_blocks.0.attentions.0.proj_in", "down_blocks.0.attentions.0.proj_out",
        "up_blocks.3.attentions.1.proj_in", "mid_block.attentions.0.proj_out",
        # 3x3 resnet convs, a 1x1 shortcut, a stride-2 downsampler and an upsampler conv
        "down_blocks.1.resnets.0.conv1", "down_blocks.1.resnets.0.conv_shortcut",
        "mid_block.resnets.1.conv2", "up_blocks.2.resnets.1.conv1",
        "down_blocks.0.downsamplers.0.conv", "up_blocks.1.upsamplers.0.conv",
    ]
    te_modules = []
    for n in (0, 1):
        for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
            te_modules.append("encoder.layers.%d.self_attn.%s" % (n, p))
    for n in (0, 2):
        te_modules += ["encoder.layers.%d.mlp.fc1" % n, "encoder.layers.%d.mlp.fc2" % n]
    unet_mods, te_mods = dict(unet.named_modules()), dict(te.named_modules())
    sd = {}
    for prefix, names, mods in (("lora_unet_", unet_modules, unet_mods),
                                ("lora_te_", te_modules, te_mods)):
        for name in names:
            mod = mods[name]
            key = kohya_name(prefix, te_module_path(name) if prefix == "lora_te_" else name)
            if isinstance(mod, torch.nn.Conv2d):
                kh, kw = mod.kernel_size
                down = torch.randn(rank, mod.in_channels, kh, kw, generator=g) * 0.2
                up = torch.randn(mod.out_channels, rank, 1, 1, generator=g) * 0.2
            else:
                assert isinstance(mod, torch.nn.Linear), name
                down = torch.randn(rank, mod.in_features, generator=g) * 0.2
                up = torch.randn(mod.out_features, rank, generator=g) * 0.2
            sd[key + ".lora_down.weight"] = down
            sd[key + ".lora_up.weight"] = up
            sd[key + ".alpha"] = torch.tensor(alpha)
    save_file({k: v.contiguous() for k, v in sd.items()}, ref(LORA_LOCON),
              # one metadata key: safetensors writes several in a random order (not byte-stable)
              metadata={"ss_network_module": "networks.lora"})


def make_embeddings():
    # diffusers layout: one key, the token itself, [vectors, width]
    g = torch.Generator().manual_seed(1003)
    save_file({"<tiny-token>": (torch.randn(2, 32, generator=g) * 0.1).contiguous()},
              ref(TI_DIFFUSERS))
    # A1111 safetensors layout: key emb_params [vectors, width]; the token is the file stem
    g = torch.Generator().manual_seed(1004)
    save_file({"emb_params": (torch.randn(3, 32, generator=g) * 0.1).contiguous()}, ref(TI_A1111))


def make_inputs():
    os.makedirs(in_dir, exist_ok=True)
    make_images()
    make_lora_peft()
    make_lora_locon()
    make_embeddings()


# ---------------------------------------------------------------------------------------------
# Running a pipeline and writing a case
# ---------------------------------------------------------------------------------------------

def load(Pipe, model, cls, **kw):
    pipe = Pipe.from_pretrained(model_dir(model), dtype=torch.float32, safety_checker=None,
                                requires_safety_checker=False, **kw)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = cls.from_config(pipe.scheduler.config)
    return pipe


def execute(pipe, prompt, seed, call):
    steps, ts = [], []

    def on_step_end(p, i, t, kw):
        steps.append(kw["latents"].detach().clone())
        ts.append(float(t))
        return kw

    out = pipe(prompt, generator=torch.Generator("cpu").manual_seed(seed), output_type="np",
               callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"],
               **call)
    images = torch.from_numpy(np.ascontiguousarray(out.images)).to(torch.float32)
    return images, torch.stack(steps).to(torch.float32).contiguous(), ts, out


def plain(pipe, prompt, seed, call):
    """Final image (np) of a run without step capture, for the sanity comparisons."""
    return pipe(prompt, generator=torch.Generator("cpu").manual_seed(seed), output_type="np",
                **call).images


def maxdiff(a, b):
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def write(name, pipe, cls, model, prompt, seed, call, images, step_latents, ts, out, extra):
    assert torch.isfinite(step_latents).all() and torch.isfinite(images).all(), name
    assert float(images.std()) > 1e-3, (name, "flat image")
    config = {k: v for k, v in pipe.scheduler.config.items() if not k.startswith("_")}
    config = json.loads(json.dumps(config, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))
    meta = {
        "prompt": prompt,
        "negative_prompt": call.get("negative_prompt", ""),
        "num_inference_steps": call["num_inference_steps"],
        "guidance_scale": call["guidance_scale"],
        "seed": seed,
        "model": model,
        "scheduler": cls.__name__,
        "scheduler_overrides": {},
        "scheduler_config": config,
        "num_images_per_prompt": 1,
        "timesteps": [float(t) for t in pipe.scheduler.timesteps],
        "timesteps_run": ts,
        "versions": VERSIONS,
        "pipeline": type(pipe).__name__,
        "generator": SCRIPT,
    }
    for k in ("height", "width", "strength"):
        if k in call:
            meta[k] = call[k]
    meta.update(extra)
    path = os.path.join(out_dir, "pipe-%s.safetensors" % name)
    save_file({"step_latents": step_latents, "images": images}, path,
              metadata={"json": json.dumps(meta)})
    for n, img in enumerate(pipe.numpy_to_pil(out.images)):
        img.save(os.path.join(out_dir, "%s-%d.png" % (name, n)))
    size = os.path.getsize(path)
    assert size <= 2 * 1024 * 1024, (path, size)
    print("%-28s %s evaluations %d, images %s, %d bytes" % (
        name, cls.__name__, step_latents.shape[0], tuple(images.shape), size))
    return meta


# ---------------------------------------------------------------------------------------------
# Inpainting
# ---------------------------------------------------------------------------------------------

def inpaint(name, model, cls, steps, seed, strength=None, mask_file=None, mask_blur=0):
    pipe = load(StableDiffusionInpaintPipeline, model, cls)
    init = Image.open(fx(INIT)).convert("RGB")
    orig_mask = Image.open(fx(MASK))
    extra = {"image": INIT, "image_root": "fixtures", "mask_blur": mask_blur,
             "strength": 1.0 if strength is None else strength}
    if mask_file is not None:   # a mask this script made: the file is what the pipeline gets
        mask = Image.open(ref(mask_file))
        extra.update(mask_image=mask_file, mask_image_root="reference")
    else:
        mask = orig_mask
        extra.update(mask_image=MASK, mask_image_root="fixtures")
    if mask_file is not None:
        # How much the pipeline's resize filter matters for this mask (binarized at 0.5).
        ours = np.array(mask.convert("L").resize((128, 128), resample=Image.LANCZOS)) >= 128
        for f in ("NEAREST", "BILINEAR", "BICUBIC"):
            other = np.array(mask.convert("L").resize((128, 128), resample=getattr(Image, f))) >= 128
            print("  mask pixels that differ with %s instead of LANCZOS: %d" % (f, (ours != other).sum()))
    if mask_blur:
        mask = pipe.mask_processor.blur(mask, blur_factor=mask_blur)
        saved = np.array(Image.open(ref(MASK_BLUR4)))
        assert mask_blur == 4 and (saved == np.array(mask)).all(), "blurred mask file differs"
        extra.update(mask_blurred=MASK_BLUR4, mask_blurred_root="reference")
    call = dict(num_inference_steps=steps, guidance_scale=7.5, image=init, mask_image=mask)
    if strength is not None:
        call["strength"] = strength
    images, step_latents, ts, out = execute(pipe, PROMPT, seed, call)
    # Sanity: how far the result is from the init image where the mask keeps it and repaints.
    m = np.array(mask.convert("L").resize((128, 128), resample=Image.LANCZOS),
                 dtype=np.float32)[None, :, :, None] / 255 >= 0.5
    d = np.abs(out.images - np.array(init, dtype=np.float32)[None] / 255)
    print("  mean |out - init|: kept region %.4f, repainted region %.4f" % (
        d[np.broadcast_to(~m, d.shape)].mean(), d[np.broadcast_to(m, d.shape)].mean()))
    if mask_file is not None or mask_blur:
        base = plain(pipe, PROMPT, seed, dict(call, mask_image=orig_mask))
        print("  max |image - image with the plain fixture mask| = %.4g" % maxdiff(out.images, base))
    call_meta = {k: v for k, v in call.items() if k not in ("image", "mask_image")}
    if strength is None:
        call_meta.pop("strength", None)
    write(name, pipe, cls, model, PROMPT, seed, call_meta, images, step_latents, ts, out, extra)


# ---------------------------------------------------------------------------------------------
# ControlNet
# ---------------------------------------------------------------------------------------------

def controlnet(name, cls, steps, seed, images, scales, start=0.0, end=1.0, guess_mode=False,
               size=None):
    nets = [ControlNetModel.from_pretrained(model_dir(CONTROLNET), dtype=torch.float32)
            for _ in images]
    pipe = load(StableDiffusionControlNetPipeline, "tiny-sd1", cls,
                controlnet=nets if len(nets) > 1 else nets[0])
    pil = [Image.open(fx(p) if root == "fixtures" else ref(p)).convert("RGB") for p, root in images]
    call = dict(num_inference_steps=steps, guidance_scale=7.5,
                image=pil if len(pil) > 1 else pil[0],
                controlnet_conditioning_scale=scales if len(scales) > 1 else scales[0],
                control_guidance_start=start, control_guidance_end=end, guess_mode=guess_mode)
    if size is not None:
        call.update(height=size[0], width=size[1])
    out_images, step_latents, ts, out = execute(pipe, PROMPT, seed, call)
    # Sanity: the same call without ControlNet (StableDiffusionPipeline, same latents draw).
    sd = load(StableDiffusionPipeline, "tiny-sd1", cls)
    h, w = out_images.shape[1:3]
    base = plain(sd, PROMPT, seed, dict(num_inference_steps=steps, guidance_scale=7.5, height=h,
                                        width=w))
    print("  max |image - image without ControlNet| = %.4g" % maxdiff(out.images, base))
    assert maxdiff(out.images, base) > 1e-3, name
    n = len(ts)
    st = start if isinstance(start, list) else [start] * len(nets)
    en = end if isinstance(end, list) else [end] * len(nets)
    keep = [[1.0 - float(i / n < s or (i + 1) / n > e) for s, e in zip(st, en)] for i in range(n)]
    extra = {"controlnets": [CONTROLNET] * len(nets),
             "control_images": [p for p, _ in images],
             "control_images_root": [r for _, r in images],
             "controlnet_conditioning_scale": list(scales),
             "control_guidance_start": start, "control_guidance_end": end,
             "guess_mode": guess_mode, "controlnet_keep": keep}
    call_meta = {k: v for k, v in call.items() if k in (
        "num_inference_steps", "guidance_scale", "height", "width")}
    write(name, pipe, cls, "tiny-sd1", PROMPT, seed, call_meta, out_images, step_latents, ts, out,
          extra)


def controlnet_with_image(name, model, cls, steps, seed, strength, masked, guess_mode=False,
                          start=0.0, end=1.0):
    """StableDiffusionControlNetImg2ImgPipeline, or with a mask
    StableDiffusionControlNetInpaintPipeline: the init image, the mirrored init as the control
    image, 128x128 given explicitly (the two pipelines default the size differently)."""
    Pipe = (StableDiffusionControlNetInpaintPipeline if masked
            else StableDiffusionControlNetImg2ImgPipeline)
    net = ControlNetModel.from_pretrained(model_dir(CONTROLNET), dtype=torch.float32)
    pipe = load(Pipe, model, cls, controlnet=net)
    init = Image.open(fx(INIT)).convert("RGB")
    control = Image.open(ref(CONTROL_MIRRORED)).convert("RGB")
    call = dict(num_inference_steps=steps, guidance_scale=7.5, image=init, control_image=control,
                controlnet_conditioning_scale=0.8, strength=strength, height=128, width=128,
                guess_mode=guess_mode, control_guidance_start=start, control_guidance_end=end)
    extra = {"image": INIT, "image_root": "fixtures", "controlnets": [CONTROLNET],
             "control_images": [CONTROL_MIRRORED], "control_images_root": ["reference"],
             "controlnet_conditioning_scale": [0.8], "control_guidance_start": start,
             "control_guidance_end": end, "guess_mode": guess_mode, "strength": strength}
    if masked:
        call["mask_image"] = Image.open(fx(MASK))
        extra.update(mask_image=MASK, mask_image_root="fixtures", mask_blur=0)
    images, step_latents, ts, out = execute(pipe, PROMPT, seed, call)
    # Sanity: the same call without the ControlNet.
    Plain = StableDiffusionInpaintPipeline if masked else diffusers.StableDiffusionImg2ImgPipeline
    base = plain(load(Plain, model, cls), PROMPT, seed,
                 {k: v for k, v in call.items() if k in (
                     "num_inference_steps", "guidance_scale", "image", "mask_image", "strength",
                     "height", "width")})
    print("  max |image - image without ControlNet| = %.4g" % maxdiff(out.images, base))
    assert maxdiff(out.images, base) > 1e-3, name
    call_meta = {k: v for k, v in call.items() if k in (
        "num_inference_steps", "guidance_scale", "height", "width", "strength")}
    write(name, pipe, cls, model, PROMPT, seed, call_meta, images, step_latents, ts, out, extra)


# ---------------------------------------------------------------------------------------------
# LoRA
# ---------------------------------------------------------------------------------------------

def file_lora_modules(path):
    """{component: {module key: sum of |down| + |up|}} of a LoRA file, and its alphas."""
    f = safe_open(path, "pt")
    parts, alphas = {}, {}
    for k in f.keys():
        if k.endswith(".alpha"):
            alphas[k[:-len(".alpha")]] = float(f.get_tensor(k))
            continue
        for suffix in (".lora_down.weight", ".lora_up.weight", ".lora_A.weight", ".lora_B.weight"):
            if k.endswith(suffix):
                mod = k[:-len(suffix)]
                if mod.startswith("lora_unet_") or mod.startswith("unet."):
                    comp = "unet"
                elif mod.startswith("lora_te_") or mod.startswith("text_encoder."):
                    comp = "text_encoder"
                else:
                    raise ValueError("unknown LoRA key " + k)
                d = parts.setdefault(comp, {})
                d[mod] = d.get(mod, 0.0) + float(f.get_tensor(k).abs().double().sum())
                break
        else:
            raise ValueError("unknown LoRA key " + k)
    return parts, alphas


def injected(model, adapter):
    """{module name: (sum |A| + |B|, scaling)} of the LoRA layers PEFT injected for `adapter`."""
    res = {}
    for name, mod in model.named_modules():
        if isinstance(mod, BaseTunerLayer) and adapter in getattr(mod, "lora_A", {}):
            s = float(mod.lora_A[adapter].weight.detach().abs().double().sum()
                      + mod.lora_B[adapter].weight.detach().abs().double().sum())
            res[name] = (s, float(mod.scaling[adapter]))
    return res


def check_lora_loaded(pipe, adapter, path, weight):
    """Fails unless every module of the file became a LoRA layer with the file's weights, and
    each layer's scaling is weight * alpha / rank (alpha = rank when the file has none)."""
    parts, alphas = file_lora_modules(path)
    rank = 4
    for comp in ("unet", "text_encoder"):
        want = parts.get(comp, {})
        got = injected(getattr(pipe, comp), adapter)
        assert len(got) == len(want), (path, comp, "file has %d modules, diffusers injected %d" % (
            len(want), len(got)))
        fsum, gsum = sum(want.values()), sum(v[0] for v in got.values())
        assert abs(fsum - gsum) <= 1e-4 * max(fsum, 1.0), (path, comp, fsum, gsum)
        scalings = sorted({round(v[1], 6) for v in got.values()})
        alpha = set(alphas.values()) or {float(rank)}
        expect = sorted({round(weight * a / rank, 6) for a in alpha})
        assert (not got) or scalings == expect, (path, comp, scalings, expect)
        print("  %s %-12s: %d modules in the file, %d injected, weights match, scaling %s" % (
            adapter, comp, len(want), len(got), scalings))


def lora(name, cls, steps, seed, loras):
    """loras: [(file, root, format, adapter, scale)]"""
    pipe = load(StableDiffusionPipeline, "tiny-sd1", cls)
    call = dict(num_inference_steps=steps, guidance_scale=7.5, height=128, width=128)
    base = plain(pipe, PROMPT, seed, call)
    meta_loras = []
    for path, root, fmt, adapter, scale in loras:
        full = fx(path) if root == "fixtures" else ref(path)
        pipe.load_lora_weights(full, adapter_name=adapter)
        _, alphas = file_lora_modules(full)
        aor = sorted({a / 4 for a in alphas.values()}) or [1.0]
        meta_loras.append({"file": path, "root": root, "scale": scale, "format": fmt,
                           "adapter_name": adapter, "alpha_over_rank": aor[0]})
    pipe.set_adapters([l[3] for l in loras], [l[4] for l in loras])
    for path, root, fmt, adapter, scale in loras:
        check_lora_loaded(pipe, adapter, fx(path) if root == "fixtures" else ref(path), scale)
    images, step_latents, ts, out = execute(pipe, PROMPT, seed, call)
    print("  max |image - image without LoRA| = %.4g" % maxdiff(out.images, base))
    assert maxdiff(out.images, base) > 1e-3, name
    if len(loras) == 1:
        adapter, scale = loras[0][3], loras[0][4]
        # set_adapters(weight) == set_adapters(1) + cross_attention_kwargs={"scale": weight}
        pipe.set_adapters([adapter], [1.0])
        alt = plain(pipe, PROMPT, seed, dict(call, cross_attention_kwargs={"scale": scale}))
        print("  max |image - image with set_adapters 1 and cross_attention_kwargs scale %g| = %.3g"
              % (scale, maxdiff(out.images, alt)))
        # which parts matter: the UNet part alone (text encoder LoRA off)
        if injected(pipe.text_encoder, adapter):
            pipe.set_adapters([adapter], [scale])
            from diffusers.loaders.lora_base import disable_lora_for_text_encoder
            disable_lora_for_text_encoder(pipe.text_encoder)
            unet_only = plain(pipe, PROMPT, seed, call)
            print("  max |image - image with the text-encoder part off| = %.4g" % maxdiff(
                out.images, unet_only))
            assert maxdiff(out.images, unet_only) > 1e-3, name
    else:
        for path, root, fmt, adapter, scale in loras:
            pipe.set_adapters([adapter], [scale])
            alone = plain(pipe, PROMPT, seed, call)
            print("  max |image - image with only %s| = %.4g" % (adapter, maxdiff(out.images, alone)))
            assert maxdiff(out.images, alone) > 1e-3, name
    write(name, pipe, cls, "tiny-sd1", PROMPT, seed, call, images, step_latents, ts, out,
          {"loras": meta_loras,
           "lora_scale_mode": "set_adapters: each LoRA layer adds scale * alpha / rank * "
                              "up(down(x)) to the base layer's output, unmerged, in the UNet "
                              "and in the text encoder"})


# ---------------------------------------------------------------------------------------------
# Textual inversion
# ---------------------------------------------------------------------------------------------

def ti(name, cls, steps, seed, file, token, prompt, negative_prompt=None, pass_token=False):
    call = dict(num_inference_steps=steps, guidance_scale=7.5, height=128, width=128)
    if negative_prompt is not None:
        call["negative_prompt"] = negative_prompt
    pipe = load(StableDiffusionPipeline, "tiny-sd1", cls)
    n0 = len(pipe.tokenizer)
    if pass_token:
        pipe.load_textual_inversion(ref(file), token=token)
    else:
        pipe.load_textual_inversion(ref(file))
    vectors = len(pipe.tokenizer) - n0
    added = [t for t in pipe.tokenizer.added_tokens_encoder if t.startswith(token)]
    print("  added tokens %s -> ids %s" % (added, [pipe.tokenizer.convert_tokens_to_ids(t)
                                                   for t in added]))
    emb = next(iter(safe_open(ref(file), "pt").keys()))
    want = safe_open(ref(file), "pt").get_tensor(emb)
    assert vectors == want.shape[0], (name, vectors)
    weight = pipe.text_encoder.get_input_embeddings().weight
    for i in range(vectors):
        t = token if i == 0 else "%s_%d" % (token, i)
        assert (weight[pipe.tokenizer.convert_tokens_to_ids(t)] == want[i]).all(), (name, t)

    def ids(text):
        text = pipe.maybe_convert_prompt(text, pipe.tokenizer)
        return text, pipe.tokenizer(text, padding="max_length", truncation=True,
                                    max_length=pipe.tokenizer.model_max_length).input_ids

    expanded, input_ids = ids(prompt)
    neg_expanded, neg_ids = ids(negative_prompt or "")
    print("  prompt expanded: %r" % expanded)
    images, step_latents, ts, out = execute(pipe, prompt, seed, call)
    # Sanity: the same tokens with the embedding negated.
    other = load(StableDiffusionPipeline, "tiny-sd1", cls)
    other.load_textual_inversion({token: -want}, token=token)
    base = plain(other, prompt, seed, call)
    print("  max |image - image with the embedding negated| = %.4g" % maxdiff(out.images, base))
    assert maxdiff(out.images, base) > 1e-3, name
    write(name, pipe, cls, "tiny-sd1", prompt, seed, call, images, step_latents, ts, out,
          {"embeddings": [{"file": file, "root": "reference", "token": token, "vectors": vectors}],
           "prompt_expanded": expanded, "negative_prompt_expanded": neg_expanded,
           "input_ids": input_ids, "negative_input_ids": neg_ids})


# ---------------------------------------------------------------------------------------------

CASES = [
    # Inpainting. 4-channel UNet: diffusers blends the re-noised original outside the mask.
    ("inpaint4-ddim", lambda n: inpaint(n, "tiny-sd1", DDIMScheduler, 10, 21)),
    ("inpaint4-strength-dpmpp",
     lambda n: inpaint(n, "tiny-sd1", DPMSolverMultistepScheduler, 12, 22, strength=0.7)),
    ("inpaint9-strength-euler",
     lambda n: inpaint(n, "tiny-sd1-inpaint", EulerDiscreteScheduler, 10, 23, strength=0.6)),
    ("inpaint9-mask-resize",
     lambda n: inpaint(n, "tiny-sd1-inpaint", PNDMScheduler, 8, 24, mask_file=MASK_100x72)),
    ("inpaint9-mask-ellipse-resize",
     lambda n: inpaint(n, "tiny-sd1-inpaint", PNDMScheduler, 8, 26, mask_file=MASK_ELLIPSE)),
    ("inpaint9-blur-dpmpp",
     lambda n: inpaint(n, "tiny-sd1-inpaint", DPMSolverMultistepScheduler, 8, 25, mask_blur=4)),
    # ControlNet
    ("controlnet-multi-euler",
     lambda n: controlnet(n, EulerDiscreteScheduler, 8, 31,
                          [(INIT, "fixtures"), (CONTROL_MIRRORED, "reference")], [0.5, 0.9])),
    ("controlnet-window-dpmpp",
     lambda n: controlnet(n, DPMSolverMultistepScheduler, 10, 32, [(INIT, "fixtures")], [1.0],
                          start=0.2, end=0.7)),
    ("controlnet-guess-ddim",
     lambda n: controlnet(n, DDIMScheduler, 8, 33, [(INIT, "fixtures")], [0.8], guess_mode=True)),
    ("controlnet-resize-euler",
     lambda n: controlnet(n, EulerDiscreteScheduler, 6, 34, [(CONTROL_96x64, "reference")], [1.0],
                          size=(128, 128))),
    ("controlnet-img2img-euler",
     lambda n: controlnet_with_image(n, "tiny-sd1", EulerDiscreteScheduler, 10, 35, 0.6, False)),
    ("controlnet-inpaint9-guess-ddim",
     lambda n: controlnet_with_image(n, "tiny-sd1-inpaint", DDIMScheduler, 8, 36, 1.0, True,
                                     guess_mode=True, end=0.8)),
    ("controlnet-inpaint4-dpmpp",
     lambda n: controlnet_with_image(n, "tiny-sd1", DPMSolverMultistepScheduler, 8, 37, 0.75,
                                     True)),
    # LoRA
    ("lora-kohya-scale-dpmpp",
     lambda n: lora(n, DPMSolverMultistepScheduler, 10, 41,
                    [(KOHYA, "fixtures", "kohya", "k", 0.6)])),
    ("lora-peft-te-euler",
     lambda n: lora(n, EulerDiscreteScheduler, 8, 42,
                    [(LORA_PEFT, "reference", "peft", "p", 1.0)])),
    ("lora-kohya-locon-te-ddim",
     lambda n: lora(n, DDIMScheduler, 8, 43, [(LORA_LOCON, "reference", "kohya", "l", 1.0)])),
    ("lora-two-dpmpp",
     lambda n: lora(n, DPMSolverMultistepScheduler, 8, 44,
                    [(KOHYA, "fixtures", "kohya", "k", 0.5),
                     (LORA_PEFT, "reference", "peft", "p", 0.8)])),
    # Textual inversion
    ("ti-diffusers-dpmpp",
     lambda n: ti(n, DPMSolverMultistepScheduler, 8, 51, TI_DIFFUSERS, "<tiny-token>",
                  "a photo of <tiny-token> riding a horse")),
    ("ti-a1111-euler",
     lambda n: ti(n, EulerDiscreteScheduler, 8, 52, TI_A1111, "tinystyle",
                  "tinystyle, a horse on mars", negative_prompt="blurry", pass_token=True)),
]


# Arguments: a case name selects that case; the other arguments are <fixtures> and <out dir>, in
# that order ("" for the default).
only = {a for a in _args if a in {c[0] for c in CASES}}
_dirs = [a for a in _args if a not in only]
assert len(_dirs) <= 2, "unknown arguments (not a case name): %s" % _dirs[2:]
fixtures = (_dirs[0] if len(_dirs) > 0 and _dirs[0] else
            os.path.join(ROOT, "..", "shared", "fixtures"))
out_dir = (_dirs[1] if len(_dirs) > 1 and _dirs[1] else
           os.path.join(ROOT, "tests", "data", "reference"))
in_dir = os.path.join(out_dir, "inputs")


if __name__ == "__main__":
    torch.set_num_threads(2)
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    os.makedirs(out_dir, exist_ok=True)
    make_inputs()
    for case, fn in CASES:
        if not only or case in only:
            print(case)
            fn(case)
