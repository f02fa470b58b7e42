"""Writes tests/data/reference/a1111-prompts.safetensors and pipe-a1111-split-euler.safetensors:
prompts as AUTOMATIC1111's web UI reads them, computed by A1111's own code.

A1111's modules/prompt_parser.py (parse_prompt_attention), modules/sd_hijack_clip.py
(FrozenCLIPEmbedderWithCustomWords: tokenize_line, 75-token chunks, comma backtracking, emphasis)
and modules/sd_emphasis.py ("Original": multiply, restore the mean) are imported from a checkout
of AUTOMATIC1111/stable-diffusion-webui given with --a1111 (it is not part of this repository);
the rest of the web UI they import (devices, shared.opts, sd_hijack) is stubbed with A1111's
defaults (emphasis "Original", comma_padding_backtrack 20). The text encoders are the fixtures'
tiny-sd1 (CLIP) and tiny-sd2 (OpenCLIP layout in transformers form) through transformers' CLIPTokenizer
and CLIPTextModel, as A1111 wraps them; for SD 2.x A1111's FrozenOpenCLIPEmbedderWithCustomWords
differs only in padding with id 0 ("!") after the end token, set here as it sets it (its
open_clip tokenizer has the same vocabulary and merges).

a1111-prompts.safetensors: for each case, `<model>/<i>` = forward([prompt]) ([1, 77 x chunks, H]);
metadata `json`: the cases (prompt, clip skip, parse_prompt_attention's parts, the chunks' tokens and
multipliers).

pipe-a1111-split-euler: a prompt of two chunks against a negative prompt of one: A1111 then runs
the UNet on the unconditional and the conditional halves separately (pad_cond_uncond off, its
default). Built from diffusers' components: tiny-sd1's UNet, EulerDiscreteScheduler, VAE and image
processor, latents drawn as StableDiffusionPipeline.prepare_latents draws them; the case format of
make_pipeline_references.py.

a1111-prompts-sdxl.safetensors: SDXL as A1111 conditions it (sd_models_xl, both embedders hijacked:
FrozenCLIPEmbedderForSDXLWithCustomWords on CLIP-L's penultimate layer, and
FrozenOpenCLIPEmbedder2WithCustomWords, rebuilt here over transformers as for SD 2.x, on the
OpenCLIP encoder's penultimate layer with its pooled output), on the fixtures' tiny-sdxl: per case
`sdxl/<i>.crossattn` (the two side by side, as sgm's GeneralConditioner concatenates them) and
`sdxl/<i>.pooled`; metadata: the prompts and both tokenizers' chunks. pipe-a1111-sdxl-split-euler:
the split guidance case on tiny-sdxl (each half with its own pooled embedding, time ids of the image
size).

Usage: python make_a1111_prompt_references.py --a1111 DIR [--fixtures DIR] [--out DIR]
"""
import argparse
import json
import os
import sys
import types

import diffusers
import numpy as np
import torch
import transformers
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
parser = argparse.ArgumentParser()
parser.add_argument("--a1111", required=True, help="stable-diffusion-webui checkout")
parser.add_argument("--fixtures", default=os.path.join(ROOT, "..", "shared", "fixtures"))
parser.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "reference"))
args = parser.parse_args()

opts = types.SimpleNamespace(emphasis="Original", comma_padding_backtrack=20,
                             CLIP_stop_at_last_layers=1, use_old_emphasis_implementation=False,
                             sdxl_clip_l_skip=False)


def stub_web_ui():
    """The web UI modules A1111's prompt code imports, at their defaults."""
    sys.path.insert(0, args.a1111)
    import modules  # the checkout's package
    devices = types.ModuleType("modules.devices")
    devices.device = torch.device("cpu")
    devices.torch_npu_set_device = lambda: None
    shared = types.ModuleType("modules.shared")
    shared.opts = opts
    hijack = types.ModuleType("modules.sd_hijack")
    hijack.StableDiffusionModelHijack = object
    for name, module in (("devices", devices), ("shared", shared), ("sd_hijack", hijack)):
        sys.modules["modules." + name] = module
        setattr(modules, name, module)
    from modules import prompt_parser, sd_hijack_clip
    return prompt_parser, sd_hijack_clip


prompt_parser, sd_hijack_clip = stub_web_ui()


class Hijack:
    class EmbeddingDb:
        def find_embedding_at_position(self, tokens, position):
            return None, None

    embedding_db = EmbeddingDb()
    fixes = None


class Wrapped:
    """What A1111 wraps: FrozenCLIPEmbedder's tokenizer and transformer."""

    def __init__(self, folder):
        self.tokenizer = transformers.CLIPTokenizer.from_pretrained(os.path.join(folder, "tokenizer"))
        model = transformers.CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder"))
        self.transformer = Transformer(model.eval())


class Transformer:
    """CLIPTextModel as A1111 reaches into it (transformers >= 5.6 has no .text_model)."""

    def __init__(self, model):
        self.model = model
        inner = getattr(model, "text_model", model)
        self.text_model = types.SimpleNamespace(final_layer_norm=inner.final_layer_norm)

    def __call__(self, **kwargs):
        return self.model(**kwargs)


def embedder(model):
    wrapped = Wrapped(os.path.join(args.fixtures, "models", model))
    e = sd_hijack_clip.FrozenCLIPEmbedderWithCustomWords(wrapped, Hijack())
    if model == "tiny-sd2":  # as FrozenOpenCLIPEmbedderWithCustomWords
        e.id_pad = wrapped.tokenizer.convert_tokens_to_ids("!")
    return e


LONG = ", ".join(f"(word{i}:1.{i % 9})" if i % 3 == 0 else f"thing{i} here" for i in range(40))
CASES = [
    ("a photo of an astronaut riding a horse on mars", 1),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", 1),
    ("an (important) word BREAK a second chunk, [less] and ((more))", 1),
    (LONG, 1),
    ("\\(literal\\] (unbalanced [words", 1),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", 2),
    ("", 1),
    ("(a BREAK b), c:d (e:+.5)", 1),
]


def conditioning_cases():
    tensors, cases = {}, []
    for i, (prompt, stop_at) in enumerate(CASES):
        case = {"prompt": prompt, "clip_skip": stop_at - 1,
                "parts": prompt_parser.parse_prompt_attention(prompt)}
        for model in ("tiny-sd1", "tiny-sd2"):
            if stop_at > 1 and model == "tiny-sd2":
                continue  # A1111's OpenCLIP embedder has no clip skip
            opts.CLIP_stop_at_last_layers = stop_at
            e = embedder(model)
            with torch.no_grad():
                z = e([prompt])
            chunks, _ = e.tokenize_line(prompt)
            case[model] = {"tokens": [c.tokens for c in chunks],
                           "multipliers": [c.multipliers for c in chunks]}
            tensors[f"{model}/{i}"] = z.to(torch.float32).contiguous()
        cases.append(case)
    opts.CLIP_stop_at_last_layers = 1
    meta = {"cases": cases, "generator": "tools/reference/" + os.path.basename(__file__),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}
    save_file(tensors, os.path.join(args.out, "a1111-prompts.safetensors"),
              metadata={"json": json.dumps(meta)})
    print("wrote", len(tensors), "conditionings;", [len(c["tiny-sd1"]["tokens"]) for c in cases],
          "chunks")


def split_guidance_case():
    """A two-chunk prompt, a one-chunk negative: each guidance half through the UNet alone."""
    name, seed, steps, guidance = "a1111-split-euler", 91, 6, 7.5
    negative = "blurry, (ugly:1.2)"
    pipe = StableDiffusionPipeline.from_pretrained(os.path.join(args.fixtures, "models", "tiny-sd1"),
                                                   dtype=torch.float32, safety_checker=None)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    e = embedder("tiny-sd1")
    with torch.no_grad():
        cond, uncond = e([LONG]), e([negative])
    assert cond.shape[1] != uncond.shape[1]
    g = torch.Generator().manual_seed(seed)
    scheduler = pipe.scheduler
    scheduler.set_timesteps(steps)
    latents = randn_tensor((1, 4, 16, 16), generator=g, dtype=torch.float32)
    latents = latents * scheduler.init_noise_sigma
    step_latents, timesteps = [], []
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.scale_model_input(latents, t)
            noise_uncond = pipe.unet(x, t, encoder_hidden_states=uncond).sample
            noise_cond = pipe.unet(x, t, encoder_hidden_states=cond).sample
            noise = noise_uncond + guidance * (noise_cond - noise_uncond)
            latents = scheduler.step(noise, t, latents, generator=g).prev_sample
            step_latents.append(latents.clone())
            timesteps.append(float(t))
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
        images = pipe.image_processor.postprocess(image, output_type="np")
    config = {k: v for k, v in scheduler.config.items() if not k.startswith("_")}
    config = json.loads(json.dumps(config, default=lambda v: list(v) if isinstance(v, tuple)
                                   else str(v)))
    meta = {"prompt": LONG, "negative_prompt": negative, "prompt_syntax": "a1111",
            "num_inference_steps": steps, "guidance_scale": guidance, "seed": seed,
            "height": 128, "width": 128, "model": "tiny-sd1", "model_root": "fixtures",
            "scheduler": "EulerDiscreteScheduler", "scheduler_config": config,
            "timesteps": timesteps, "chunks": [cond.shape[1] // 77, uncond.shape[1] // 77],
            "generator": "tools/reference/" + os.path.basename(__file__),
            "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                         "transformers": transformers.__version__}}
    save_file({"step_latents": torch.stack(step_latents).contiguous(),
               "images": torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32)},
              os.path.join(args.out, f"pipe-{name}.safetensors"), metadata={"json": json.dumps(meta)})
    Image.fromarray((images[0] * 255).round().astype("uint8")).save(
        os.path.join(args.out, f"{name}-0.png"))
    print("wrote", name, "chunks", meta["chunks"])


class WrappedXLClipL:
    """sgm's FrozenCLIPEmbedder as SDXL configures it (layer "hidden", the penultimate layer)."""

    def __init__(self, folder):
        self.tokenizer = transformers.CLIPTokenizer.from_pretrained(os.path.join(folder, "tokenizer"))
        model = transformers.CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder"))
        self.transformer = Transformer(model.eval())
        self.layer = "hidden"
        self.layer_idx = model.config.num_hidden_layers - 1  # 11 of SDXL's 12


class WrappedXLClipG:
    """sgm's FrozenOpenCLIPEmbedder2 (layer "penultimate", returns the pooled output) over
    transformers' CLIPTextModelWithProjection: the same weights, vocabulary and merges."""

    def __init__(self, folder):
        self.tokenizer = transformers.CLIPTokenizer.from_pretrained(
            os.path.join(folder, "tokenizer_2"))
        self.model = transformers.CLIPTextModelWithProjection.from_pretrained(
            os.path.join(folder, "text_encoder_2")).eval()
        self.layer = "penultimate"
        self.return_pooled = True

    def encode_with_transformer(self, tokens):
        out = self.model(input_ids=tokens, output_hidden_states=True)
        return {"penultimate": out.hidden_states[-2], "pooled": out.text_embeds}


class ClipGEmbedder(sd_hijack_clip.FrozenCLIPEmbedderWithCustomWords):
    """A1111's FrozenOpenCLIPEmbedder2WithCustomWords (modules/sd_hijack_open_clip.py) with the
    tokenizer through transformers instead of open_clip: pads with id 0 ("!") and encodes as it."""

    def __init__(self, wrapped, hijack):
        super().__init__(wrapped, hijack)
        self.id_pad = 0

    def encode_with_transformers(self, tokens):  # verbatim from sd_hijack_open_clip.py
        d = self.wrapped.encode_with_transformer(tokens)
        z = d[self.wrapped.layer]

        pooled = d.get("pooled")
        if pooled is not None:
            z.pooled = pooled

        return z


def sdxl_embedders():
    folder = os.path.join(args.fixtures, "models", "tiny-sdxl")
    clip_l = sd_hijack_clip.FrozenCLIPEmbedderForSDXLWithCustomWords(WrappedXLClipL(folder), Hijack())
    clip_g = ClipGEmbedder(WrappedXLClipG(folder), Hijack())
    assert clip_g.wrapped.tokenizer.convert_ids_to_tokens(0) == "!"

    def condition(prompt):
        """sgm's GeneralConditioner over both: crossattn side by side, vector = clip_g's pooled."""
        with torch.no_grad():
            z_l = clip_l([prompt])
            z_g, pooled = clip_g([prompt])
        return torch.cat([z_l, z_g], dim=2), pooled

    return clip_l, clip_g, condition


def sdxl_conditioning_cases():
    clip_l, clip_g, condition = sdxl_embedders()
    tensors, cases = {}, []
    for i, (prompt, stop_at) in enumerate(CASES):
        if stop_at != 1:
            continue  # A1111 applies no clip skip to SDXL
        crossattn, pooled = condition(prompt)
        chunks_l, _ = clip_l.tokenize_line(prompt)
        chunks_g, _ = clip_g.tokenize_line(prompt)
        cases.append({"prompt": prompt, "index": i,
                      "tokens_l": [c.tokens for c in chunks_l],
                      "tokens_g": [c.tokens for c in chunks_g]})
        tensors[f"sdxl/{i}.crossattn"] = crossattn.to(torch.float32).contiguous()
        tensors[f"sdxl/{i}.pooled"] = pooled.to(torch.float32).contiguous()
    meta = {"cases": cases, "model": "tiny-sdxl",
            "generator": "tools/reference/" + os.path.basename(__file__),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}
    save_file(tensors, os.path.join(args.out, "a1111-prompts-sdxl.safetensors"),
              metadata={"json": json.dumps(meta)})
    print("wrote", len(cases), "SDXL conditionings")


def sdxl_split_guidance_case():
    """SDXL: a two-chunk prompt against a one-chunk negative, each guidance half through the UNet
    alone with its own pooled text embedding; the time ids are the image size's for both."""
    from diffusers import StableDiffusionXLPipeline
    name, seed, steps, guidance, size = "a1111-sdxl-split-euler", 92, 6, 5.0, 128
    negative = "blurry, (ugly:1.2)"
    pipe = StableDiffusionXLPipeline.from_pretrained(
        os.path.join(args.fixtures, "models", "tiny-sdxl"), dtype=torch.float32)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    _, _, condition = sdxl_embedders()
    cond, cond_pooled = condition(LONG)
    uncond, uncond_pooled = condition(negative)
    assert cond.shape[1] != uncond.shape[1]
    time_ids = torch.tensor([[size, size, 0, 0, size, size]], dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    scheduler = pipe.scheduler
    scheduler.set_timesteps(steps)
    latents = randn_tensor((1, 4, size // 8, size // 8), generator=g, dtype=torch.float32)
    latents = latents * scheduler.init_noise_sigma
    step_latents, timesteps = [], []
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.scale_model_input(latents, t)
            noise_uncond = pipe.unet(x, t, encoder_hidden_states=uncond, added_cond_kwargs={
                "text_embeds": uncond_pooled, "time_ids": time_ids}).sample
            noise_cond = pipe.unet(x, t, encoder_hidden_states=cond, added_cond_kwargs={
                "text_embeds": cond_pooled, "time_ids": time_ids}).sample
            noise = noise_uncond + guidance * (noise_cond - noise_uncond)
            latents = scheduler.step(noise, t, latents, generator=g).prev_sample
            step_latents.append(latents.clone())
            timesteps.append(float(t))
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
        images = pipe.image_processor.postprocess(image, output_type="np")
    config = {k: v for k, v in scheduler.config.items() if not k.startswith("_")}
    config = json.loads(json.dumps(config, default=lambda v: list(v) if isinstance(v, tuple)
                                   else str(v)))
    meta = {"prompt": LONG, "negative_prompt": negative, "prompt_syntax": "a1111",
            "num_inference_steps": steps, "guidance_scale": guidance, "seed": seed,
            "height": size, "width": size, "model": "tiny-sdxl", "model_root": "fixtures",
            "scheduler": "EulerDiscreteScheduler", "scheduler_config": config,
            "timesteps": timesteps, "chunks": [cond.shape[1] // 77, uncond.shape[1] // 77],
            "generator": "tools/reference/" + os.path.basename(__file__),
            "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                         "transformers": transformers.__version__}}
    save_file({"step_latents": torch.stack(step_latents).contiguous(),
               "images": torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32)},
              os.path.join(args.out, f"pipe-{name}.safetensors"), metadata={"json": json.dumps(meta)})
    Image.fromarray((images[0] * 255).round().astype("uint8")).save(
        os.path.join(args.out, f"{name}-0.png"))
    print("wrote", name, "chunks", meta["chunks"])


conditioning_cases()
split_guidance_case()
sdxl_conditioning_cases()
sdxl_split_guidance_case()
