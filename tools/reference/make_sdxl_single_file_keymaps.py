"""Writes tests/data/reference/sdxl-single-file-keymap-{base,refiner}.json: how the original
(Stability AI "sgm") layout of an SDXL single-file checkpoint names every tensor of a diffusers SDXL
folder, checked by diffusers itself.

For the fixtures' tiny-sdxl and the tiny refiner of make_sdxl_refiner_references.py, the script
lays the folder's weights out as an original-layout checkpoint (model.diffusion_model.*,
first_stage_model.*, conditioner.embedders.0.transformer.* (CLIP ViT-L) and
conditioner.embedders.1.model.* (OpenCLIP ViT-bigG), or conditioner.embedders.0.model.* for the
refiner), loads that file with diffusers' from_single_file (config = the folder) and requires every
parameter of every component to equal the folder's. The key map it writes lets the tests build the
same checkpoint from the fixture folder without committing megabytes of weights:

  [{"key": LDM key, "component": "unet"|"vae"|"text_encoder"|"text_encoder_2",
    "op": "copy"|"transpose"|"stack"|"conv1x1", "sources": [diffusers keys]}]

stack: the sources concatenated along dim 0 (OpenCLIP's fused q/k/v in_proj); transpose: the one
2-D source transposed (OpenCLIP's text_projection is x @ P); conv1x1: the [C, C] source as a
[C, C, 1, 1] convolution (the VAE attention's q/k/v/proj_out). CPU, float32.

Usage: python make_sdxl_single_file_keymaps.py [<shared/fixtures> [<out dir>]]
"""
import json
import os
import sys
import tempfile

import diffusers
import torch
import transformers
from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
fixtures = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "fixtures")
out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests", "data", "reference")

RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
          "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def rename_resnet(rest):
    head, _, tail = rest.partition(".")
    return RESNET[head] + "." + tail


def unet_keymap(unet):
    cfg = unet.config
    levels = len(cfg.block_out_channels)
    lpb = cfg.layers_per_block
    lpb = [lpb] * levels if isinstance(lpb, int) else list(lpb)
    has_attention = ["CrossAttn" in t for t in cfg.down_block_types]
    up_attention = ["CrossAttn" in t for t in cfg.up_block_types]
    input_index, i = {}, 1
    for level in range(levels):
        for j in range(lpb[level]):
            input_index[(level, j)] = i
            i += 1
        if level + 1 < levels:
            input_index[(level, "down")] = i
            i += 1
    entries = []
    for name in unet.state_dict():
        parts = name.split(".")
        if parts[0] == "time_embedding":
            ldm = {"linear_1": "time_embed.0", "linear_2": "time_embed.2"}[parts[1]] + "." + parts[2]
        elif parts[0] == "add_embedding":
            ldm = {"linear_1": "label_emb.0.0", "linear_2": "label_emb.0.2"}[parts[1]] + "." + parts[2]
        elif parts[0] == "conv_in":
            ldm = "input_blocks.0.0." + parts[1]
        elif parts[0] == "conv_norm_out":
            ldm = "out.0." + parts[1]
        elif parts[0] == "conv_out":
            ldm = "out.2." + parts[1]
        elif parts[0] == "down_blocks":
            level, kind = int(parts[1]), parts[2]
            rest = ".".join(parts[4:])
            if kind == "resnets":
                ldm = f"input_blocks.{input_index[(level, int(parts[3]))]}.0." + rename_resnet(rest)
            elif kind == "attentions":
                ldm = f"input_blocks.{input_index[(level, int(parts[3]))]}.1." + rest
            else:  # downsamplers.0.conv.*
                ldm = f"input_blocks.{input_index[(level, 'down')]}.0.op." + ".".join(parts[5:])
        elif parts[0] == "mid_block":
            rest = ".".join(parts[3:])
            if parts[1] == "resnets":
                ldm = f"middle_block.{2 * int(parts[2])}." + rename_resnet(rest)
            else:
                ldm = "middle_block.1." + rest
        elif parts[0] == "up_blocks":
            u, kind = int(parts[1]), parts[2]
            per = lpb[levels - 1 - u] + 1
            if kind == "resnets":
                ldm = f"output_blocks.{u * per + int(parts[3])}.0." + rename_resnet(".".join(parts[4:]))
            elif kind == "attentions":
                ldm = f"output_blocks.{u * per + int(parts[3])}.1." + ".".join(parts[4:])
            else:  # upsamplers.0.conv.*: after the resnet and, where the level has one, attention
                ldm = (f"output_blocks.{u * per + per - 1}.{2 if up_attention[u] else 1}.conv."
                       + ".".join(parts[5:]))
        else:
            raise KeyError(name)
        entries.append({"key": "model.diffusion_model." + ldm, "component": "unet", "op": "copy",
                        "sources": [name]})
    assert has_attention  # (used by the layout above through up_attention)
    return entries


def vae_keymap(vae):
    levels = len(vae.config.block_out_channels)
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}
    entries = []
    for name in vae.state_dict():
        parts = name.split(".")
        op = "copy"
        if parts[0] in ("quant_conv", "post_quant_conv"):
            ldm = name
        else:
            coder, what = parts[0], parts[1]
            if what in ("conv_in", "conv_out"):
                ldm = name
            elif what == "conv_norm_out":
                ldm = f"{coder}.norm_out.{parts[2]}"
            elif what == "mid_block" and parts[2] == "resnets":
                rest = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
                ldm = f"{coder}.mid.block_{int(parts[3]) + 1}.{rest}"
            elif what == "mid_block":  # attentions.0.<to_q|...|to_out.0>.<weight|bias>
                layer = parts[4]
                ldm = f"{coder}.mid.attn_1.{attn[layer]}.{parts[-1]}"
                if layer != "group_norm" and parts[-1] == "weight":
                    op = "conv1x1"
            else:  # down_blocks / up_blocks
                level = int(parts[2])
                ldm_level = level if what == "down_blocks" else levels - 1 - level
                block = "down" if what == "down_blocks" else "up"
                if parts[3] == "resnets":
                    rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
                    ldm = f"{coder}.{block}.{ldm_level}.block.{parts[4]}.{rest}"
                else:
                    sampler = "downsample" if block == "down" else "upsample"
                    ldm = f"{coder}.{block}.{ldm_level}.{sampler}.conv.{parts[-1]}"
        entries.append({"key": "first_stage_model." + ldm, "component": "vae", "op": op,
                        "sources": [name]})
    return entries


def clip_keymap(encoder, prefix):
    # transformers >= 5.6 names CLIPTextModel's tensors without "text_model."; checkpoints and
    # saved model files keep it, and so does the key map.
    def saved(name):
        return name if name.startswith("text_model.") else "text_model." + name

    return [{"key": prefix + saved(name), "component": "text_encoder", "op": "copy",
             "sources": [saved(name)]}
            for name in encoder.state_dict() if not name.endswith("position_ids")]


def open_clip_keymap(encoder, prefix):
    entries, fused = [], {}
    layer_names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc",
                   "mlp.fc2": "mlp.c_proj", "self_attn.out_proj": "attn.out_proj"}
    for name in encoder.state_dict():
        if name.endswith("position_ids"):
            continue
        op, sources = "copy", [name]
        if name == "text_model.embeddings.token_embedding.weight":
            ldm = "token_embedding.weight"
        elif name == "text_model.embeddings.position_embedding.weight":
            ldm = "positional_embedding"
        elif name.startswith("text_model.final_layer_norm."):
            ldm = "ln_final." + name.split(".")[-1]
        elif name == "text_projection.weight":
            ldm, op = "text_projection", "transpose"
        else:
            parts = name.split(".")  # text_model.encoder.layers.<i>.<module...>.<weight|bias>
            layer, module, kind = parts[3], ".".join(parts[4:-1]), parts[-1]
            if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                fused.setdefault((layer, kind), []).append(name)
                continue
            ldm = f"transformer.resblocks.{layer}.{layer_names[module]}.{kind}"
        entries.append({"key": prefix + ldm, "component": "text_encoder_2", "op": op,
                        "sources": sources})
    for (layer, kind), names in fused.items():
        order = {"q_proj": 0, "k_proj": 1, "v_proj": 2}
        names.sort(key=lambda n: order[n.split(".")[-2]])
        entries.append({"key": f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{kind}",
                        "component": "text_encoder_2", "op": "stack", "sources": names})
    return entries


def build_checkpoint(pipe, keymap):
    components = {"unet": pipe.unet, "vae": pipe.vae, "text_encoder": pipe.text_encoder,
                  "text_encoder_2": pipe.text_encoder_2}
    states = {k: m.state_dict() for k, m in components.items() if m is not None}
    sd = {}
    for e in keymap:
        state = states[e["component"]]
        src = [state[s] if s in state else state[s.removeprefix("text_model.")]
               for s in e["sources"]]
        if e["op"] == "copy":
            t = src[0]
        elif e["op"] == "transpose":
            t = src[0].T
        elif e["op"] == "stack":
            t = torch.cat(src, 0)
        else:
            t = src[0].reshape(*src[0].shape, 1, 1)
        sd[e["key"]] = t.contiguous().clone()
    return sd


def check_against_folder(pipe, loaded, label):
    for component in ("unet", "vae", "text_encoder", "text_encoder_2"):
        mine, theirs = getattr(pipe, component), getattr(loaded, component)
        if mine is None:
            assert theirs is None, (label, component)
            continue
        a, b = mine.state_dict(), theirs.state_dict()
        a = {k: v for k, v in a.items() if not k.endswith("position_ids")}
        b = {k: v for k, v in b.items() if not k.endswith("position_ids")}
        assert a.keys() == b.keys(), (label, component, set(a) ^ set(b))
        for k in a:
            assert torch.equal(a[k], b[k]), (label, component, k)
    print(label, "diffusers' from_single_file loads every tensor equal to the folder's")


def make(pipe_class, folder, name, text_prefixes):
    pipe = pipe_class.from_pretrained(folder, dtype=torch.float32)
    keymap = unet_keymap(pipe.unet) + vae_keymap(pipe.vae)
    if pipe.text_encoder is not None:
        keymap += clip_keymap(pipe.text_encoder, text_prefixes[0])
    keymap += open_clip_keymap(pipe.text_encoder_2, text_prefixes[1])
    assert len({e["key"] for e in keymap}) == len(keymap)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, name + ".safetensors")
        save_file(build_checkpoint(pipe, keymap), path)
        loaded = pipe_class.from_single_file(path, config=folder, dtype=torch.float32)
        check_against_folder(pipe, loaded, name)
    doc = {"generator": "tools/reference/" + os.path.basename(__file__),
           "model": os.path.basename(folder.rstrip("/")),
           "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                        "transformers": transformers.__version__},
           "tensors": keymap}
    with open(os.path.join(out_dir, f"sdxl-single-file-keymap-{name}.json"), "w") as f:
        json.dump(doc, f, indent=0)
    print("wrote", name, len(keymap), "tensors")


def main():
    make(StableDiffusionXLPipeline, os.path.join(fixtures, "models", "tiny-sdxl"), "base",
         ("conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."))
    # The refiner folder as make_sdxl_refiner_references.py and the tests assemble it.
    with tempfile.TemporaryDirectory() as tmp:
        refiner = os.path.join(tmp, "tiny-sdxl-refiner")
        os.makedirs(refiner)
        for entry in ("model_index.json", "unet"):
            os.symlink(os.path.join(out_dir, "tiny-sdxl-refiner", entry),
                       os.path.join(refiner, entry))
        for component in ("text_encoder_2", "tokenizer_2", "vae", "scheduler"):
            os.symlink(os.path.join(fixtures, "models", "tiny-sdxl", component),
                       os.path.join(refiner, component))
        make(StableDiffusionXLImg2ImgPipeline, refiner, "refiner",
             (None, "conditioner.embedders.0.model."))


if __name__ == "__main__":
    main()
