"""Writes the ControlNet references the shared fixtures do not cover, all computed by diffusers
(as installed in the reference environment) on CPU in float32 from the fixtures' tiny models:

  tests/data/reference/controlnet-io-guess.safetensors
      tiny-controlnet on one small input (batch 1, 8x8 latent, a 64x64 crop of the fixture's
      control image): `guess.*` guess mode at scale 0.7; `pool.*` and `pool_guess.*` with
      global_pool_conditions (guess mode is then ignored, as diffusers does); `bgr.*` with
      controlnet_conditioning_channel_order "bgr". Each case has `<case>.down0`..`<case>.downN` and
      `<case>.mid`. Inputs: `sample`, `timestep` (int64), `encoder_hidden_states`,
      `controlnet_cond`; `guess_scales` is torch.logspace(-1, 0, N + 2) * 0.7.
  tests/data/reference/unet-with-controlnet-residuals.safetensors
      tiny-sd1's UNet on the inputs of golden/tiny-controlnet-io.safetensors with that file's
      residuals (`out`); with the residuals of a global-pooling tiny-controlnet on the same
      inputs (`pool.down*`, `pool.mid`, `out_pooled`); and with the sum of both sets, as
      MultiControlNetModel adds them (`out_sum`).
  tests/data/reference/controlnet-sdxl-rule.safetensors
      a text_time (SDXL) ControlNet made from tiny-sdxl's UNet config, with weights by the
      fixtures' rule (crc32 of the key seeds torch.randn; see ../shared/fixtures/README.md), on
      batch 2 with text_embeds and time_ids: inputs, `down*`, `mid`; its config in the metadata.
  tests/data/reference/tiny-controlnet-original-layout.json
      how to write tiny-controlnet's weights in the original (lllyasviel / A1111) layout,
      `control_model.*` (the weights themselves, 5.4 MB, are not stored: tests build the file
      from the fixture folder's weights). `tensors` lists, sorted by original key, every tensor
      of the original-layout file: `original` (its key), `diffusers` (the key in the folder's
      diffusion_pytorch_model.safetensors it comes from), `shape` (its shape in the original
      layout) and `reshape` (true where that differs from the folder's shape, which is then
      given as `diffusers_shape`; a reshape never changes the element order). The mapping is
      diffusers' own conversion inverted; checked here on a temporary file built from the JSON
      as the tests build it: diffusers' convert_controlnet_checkpoint maps every key back to the
      folder's tensor, and ControlNetModel.from_single_file(file, config=<tiny-controlnet>)
      loads weights identical to the folder's.

Never diffuse's output: everything comes from diffusers. The metadata key `json` of each
safetensors file (and the top level of the JSON file) holds the versions (torch, diffusers,
safetensors) and how the file was made.

Usage: python make_controlnet_references.py [<shared/fixtures>] [<out dir>]
  defaults: ../shared/fixtures relative to the project root, and tests/data/reference/.
"""
import hashlib
import json
import math
import os
import sys
import tempfile
import zlib

import diffusers
import safetensors
import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
fixtures = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "fixtures")
out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests", "data", "reference")
CONTROLNET = os.path.join(fixtures, "models", "tiny-controlnet")
VERSIONS = {"torch": torch.__version__, "diffusers": diffusers.__version__,
            "safetensors": safetensors.__version__}

torch.set_num_threads(1)
golden = load_file(os.path.join(fixtures, "golden", "tiny-controlnet-io.safetensors"))
n_down = sum(1 for k in golden if k.startswith("down"))


def save(tensors, name, meta):
    path = os.path.join(out_dir, name)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_file(tensors, path, metadata={"json": json.dumps({"versions": VERSIONS, **meta})})
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def controlnet(**overrides):
    return ControlNetModel.from_pretrained(CONTROLNET, **overrides).eval()


def residuals(prefix, out):
    down, mid = out
    t = {f"{prefix}down{i}": d for i, d in enumerate(down)}
    t[f"{prefix}mid"] = mid
    return t


def max_rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@torch.no_grad()
def check_golden():
    """diffusers as installed reproduces the fixture's ControlNet call."""
    out = controlnet()(golden["sample"], golden["timestep"], golden["encoder_hidden_states"],
                       golden["controlnet_cond"], conditioning_scale=0.8, return_dict=False)
    err = max(max_rel(d, golden[f"down{i}"]) for i, d in enumerate(out[0]))
    err = max(err, max_rel(out[1], golden["mid"]))
    print(f"tiny-controlnet-io golden reproduced within {err:.3g}")
    assert err < 1e-5, err


@torch.no_grad()
def make_guess():
    g = torch.Generator().manual_seed(11)
    inputs = {
        "sample": torch.randn(1, 4, 8, 8, generator=g),
        "timestep": torch.tensor([500], dtype=torch.int64),
        "encoder_hidden_states": golden["encoder_hidden_states"][:1].clone(),
        "controlnet_cond": golden["controlnet_cond"][1:2, :, 32:96, 24:88].clone(),
    }
    args = (inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"],
            inputs["controlnet_cond"])
    t = dict(inputs)
    t["guess_scales"] = torch.logspace(-1, 0, n_down + 1) * 0.7
    cases = {
        "guess": ({}, dict(conditioning_scale=0.7, guess_mode=True)),
        "pool": ({"global_pool_conditions": True}, dict(conditioning_scale=0.7)),
        "pool_guess": ({"global_pool_conditions": True},
                       dict(conditioning_scale=0.7, guess_mode=True)),
        "bgr": ({"controlnet_conditioning_channel_order": "bgr"}, dict(conditioning_scale=1.0)),
    }
    for name, (config, call) in cases.items():
        model = controlnet(**config)
        assert all(model.config[k] == v for k, v in config.items())
        t.update(residuals(name + ".", model(*args, return_dict=False, **call)))
    meta = {"cases": {k: {"config": c, "call": a} for k, (c, a) in cases.items()},
            "model": "models/tiny-controlnet", "inputs": "sample: randn seed 11; "
            "encoder_hidden_states: golden[:1]; controlnet_cond: golden[1:2, :, 32:96, 24:88]"}
    save(t, "controlnet-io-guess.safetensors", meta)


@torch.no_grad()
def make_unet_with_residuals():
    unet = UNet2DConditionModel.from_pretrained(os.path.join(fixtures, "models", "tiny-sd1"),
                                                subfolder="unet").eval()
    x, ts, ctx = golden["sample"], golden["timestep"], golden["encoder_hidden_states"]
    down = [golden[f"down{i}"] for i in range(n_down)]
    pooled = controlnet(global_pool_conditions=True)(x, ts, ctx, golden["controlnet_cond"],
                                                     conditioning_scale=0.8, return_dict=False)

    def run(d, m):
        return unet(x, ts, ctx, down_block_additional_residuals=d,
                    mid_block_additional_residual=m).sample

    summed = ([a + b for a, b in zip(down, pooled[0])], golden["mid"] + pooled[1])
    t = {"out": run(down, golden["mid"]), "out_pooled": run(*pooled), "out_sum": run(*summed)}
    t.update(residuals("pool.", pooled))
    meta = {"model": "models/tiny-sd1/unet", "inputs": "golden/tiny-controlnet-io.safetensors",
            "out": "residuals down0..downN, mid of that file",
            "out_pooled": "residuals pool.* (tiny-controlnet, global_pool_conditions, scale 0.8)",
            "out_sum": "residuals golden + pool.*, summed as MultiControlNetModel does"}
    save(t, "unet-with-controlnet-residuals.safetensors", meta)


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


@torch.no_grad()
def make_sdxl():
    with open(os.path.join(fixtures, "models", "tiny-sdxl", "unet", "config.json")) as f:
        unet_config = json.load(f)
    model = ControlNetModel.from_config(unet_config_to_controlnet(unet_config))
    model.load_state_dict({k: rule_weight(k, tuple(v.shape))
                           for k, v in model.state_dict().items()})
    model.eval()
    c = model.config
    g = torch.Generator().manual_seed(12)
    text_dim = c.projection_class_embeddings_input_dim - 6 * c.addition_time_embed_dim
    t = {
        "sample": torch.randn(2, 4, 4, 6, generator=g),
        "timestep": torch.tensor([999, 500], dtype=torch.int64),
        "encoder_hidden_states": torch.randn(2, 7, c.cross_attention_dim, generator=g),
        "controlnet_cond": torch.rand(2, 3, 32, 48, generator=g),
        "text_embeds": torch.randn(2, text_dim, generator=g),
        "time_ids": torch.tensor([[32, 48, 0, 0, 32, 48], [128, 128, 8, 4, 32, 48]],
                                 dtype=torch.float32),
    }
    out = model(t["sample"], t["timestep"], t["encoder_hidden_states"], t["controlnet_cond"],
                conditioning_scale=0.9, return_dict=False,
                added_cond_kwargs={"text_embeds": t["text_embeds"], "time_ids": t["time_ids"]})
    t.update(residuals("", out))
    config = {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
    config["_class_name"] = "ControlNetModel"
    save(t, "controlnet-sdxl-rule.safetensors",
         {"config": config, "conditioning_scale": 0.9, "weights": "fixtures' rule (crc32 + randn)"})


def unet_config_to_controlnet(u):
    """The config ControlNetModel.from_unet would give tiny-sdxl's UNet, with a 4-level
    conditioning embedding (8x)."""
    keys = ["in_channels", "flip_sin_to_cos", "freq_shift", "down_block_types",
            "block_out_channels", "layers_per_block", "downsample_padding",
            "mid_block_scale_factor", "act_fn", "norm_num_groups", "norm_eps",
            "cross_attention_dim", "transformer_layers_per_block", "attention_head_dim",
            "num_attention_heads", "use_linear_projection", "upcast_attention",
            "resnet_time_scale_shift", "addition_embed_type", "addition_time_embed_dim",
            "projection_class_embeddings_input_dim", "class_embed_type", "num_class_embeds",
            "only_cross_attention", "encoder_hid_dim", "encoder_hid_dim_type"]
    c = {k: u[k] for k in keys if k in u}
    c["conditioning_embedding_out_channels"] = [8, 16, 32, 32]
    return c


RESNET_TO_LDM = [("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."),
                 ("time_emb_proj.", "emb_layers.1."), ("norm2.", "out_layers.0."),
                 ("conv2.", "out_layers.3."), ("conv_shortcut.", "skip_connection.")]


def resnet_to_ldm(rest):
    for new, old in RESNET_TO_LDM:
        if rest.startswith(new):
            return old + rest[len(new):]
    raise KeyError(rest)


def to_ldm_key(key, config):
    """The original-layout name of one diffusers ControlNet key (diffusers' conversion, inverted)."""
    lpb = config["layers_per_block"]
    n_hint = 2 * (len(config["conditioning_embedding_out_channels"]) - 1)
    p = key.split(".")
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "controlnet_mid_block": "middle_block_out.0",
             "controlnet_cond_embedding.conv_in": "input_hint_block.0",
             "controlnet_cond_embedding.conv_out": f"input_hint_block.{2 * (n_hint + 1)}"}
    module = ".".join(p[:-1])
    if module in fixed:
        return f"{fixed[module]}.{p[-1]}"
    if p[0] == "controlnet_cond_embedding" and p[1] == "blocks":
        return f"input_hint_block.{2 * (int(p[2]) + 1)}.{p[-1]}"
    if p[0] == "controlnet_down_blocks":
        return f"zero_convs.{p[1]}.0.{p[-1]}"
    rest = ".".join(p[4:])
    if p[0] == "down_blocks":
        block, kind, j = int(p[1]), p[2], int(p[3])
        if kind == "downsamplers":
            return f"input_blocks.{1 + block * (lpb + 1) + lpb}.0.op.{'.'.join(p[5:])}"
        i = 1 + block * (lpb + 1) + j
        return (f"input_blocks.{i}.0.{resnet_to_ldm(rest)}" if kind == "resnets"
                else f"input_blocks.{i}.1.{rest}")
    if p[0] == "mid_block":
        rest = ".".join(p[3:])
        return (f"middle_block.{2 * int(p[2])}.{resnet_to_ldm(rest)}" if p[1] == "resnets"
                else f"middle_block.1.{rest}")
    raise KeyError(key)


def original_from_layout(layout, folder):
    """The original-layout tensors, built from the folder's weights as the C++ tests build them."""
    return {t["original"]: folder[t["diffusers"]].reshape(t["shape"]).contiguous()
            for t in layout["tensors"]}


def make_original():
    weights = os.path.join(CONTROLNET, "diffusion_pytorch_model.safetensors")
    folder = load_file(weights)
    with open(os.path.join(CONTROLNET, "config.json")) as f:
        config = json.load(f)
    ldm = {"control_model." + to_ldm_key(k, config): (k, v) for k, v in folder.items()}
    assert len(ldm) == len(folder)
    tensors = []
    for key in sorted(ldm):
        source, v = ldm[key]
        entry = {"original": key, "diffusers": source, "shape": list(v.shape),
                 "reshape": False}
        if list(v.shape) != list(folder[source].shape):  # e.g. 1x1 conv vs linear
            entry.update(reshape=True, diffusers_shape=list(folder[source].shape))
        tensors.append(entry)
    with open(weights, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    layout = {
        "versions": VERSIONS, "model": "models/tiny-controlnet",
        "source": {"file": "models/tiny-controlnet/diffusion_pytorch_model.safetensors",
                   "sha256": digest, "tensors": len(folder)},
        "layout": "original (control_model.*)",
        "made_by": "tools/reference/make_controlnet_references.py: diffusers' "
                   "convert_controlnet_checkpoint inverted",
        "checked": "a file built from this list and the folder's weights: diffusers' "
                   "convert_controlnet_checkpoint maps every key back to the folder's tensor, and "
                   "ControlNetModel.from_single_file(file, config=<tiny-controlnet>) loads weights "
                   "identical to the folder's",
        "tensors": tensors,
    }
    # Verify the list as the tests use it: the file it builds converts back to the folder.
    built = original_from_layout(layout, folder)
    assert len(built) == len(folder)
    assert len({t["diffusers"] for t in tensors}) == len(folder)
    back = convert_controlnet_checkpoint(built, config)
    assert set(back) == set(folder), set(back) ^ set(folder)
    assert all(torch.equal(back[k], folder[k]) for k in folder)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tiny-controlnet-original.safetensors")
        save_file(built, path, metadata={"json": json.dumps(
            {"versions": VERSIONS, "model": "models/tiny-controlnet",
             "layout": "original (control_model.*)"})})
        loaded = ControlNetModel.from_single_file(path, config=CONTROLNET).state_dict()
    assert set(loaded) == set(folder), set(loaded) ^ set(folder)
    assert all(torch.equal(loaded[k], folder[k]) for k in folder)
    print("from_single_file loads the original layout back to the folder's weights")
    out = os.path.join(out_dir, "tiny-controlnet-original-layout.json")
    head = json.dumps({k: v for k, v in layout.items() if k != "tensors"}, indent=1)
    with open(out, "w") as f:  # one tensor a line
        f.write(head[:-2] + ',\n "tensors": [\n  ')
        f.write(",\n  ".join(json.dumps(t) for t in tensors))
        f.write("\n ]\n}\n")
    with open(out) as f:
        assert json.load(f) == layout
    print(f"wrote {out} ({os.path.getsize(out)} bytes, {len(tensors)} tensors, "
          f"{sum(t['reshape'] for t in tensors)} reshaped)")


if __name__ == "__main__":
    os.makedirs(out_dir, exist_ok=True)
    check_golden()
    make_guess()
    make_unet_with_residuals()
    make_sdxl()
    make_original()
