"""Writes tests/data/reference/inputs/ckpt/lightning-sd1-tiny.ckpt (+ .json): a tiny .ckpt shaped
like the released CompVis/RunwayML Stable Diffusion checkpoints, which torch.save'd a whole
pytorch_lightning training checkpoint, not just the weights. Next to `state_dict` it carries
`epoch`, `global_step`, `pytorch-lightning_version`, `callbacks` (keyed by the ModelCheckpoint
class, plus a pickled ModelCheckpoint instance), `optimizer_states` (tensors diffuse must not
load), `lr_schedulers` with numpy scalars, a numpy array and a set: the globals
`pytorch_lightning.callbacks.model_checkpoint ModelCheckpoint`, `numpy.core.multiarray scalar` /
`_reconstruct`, `numpy dtype` / `ndarray`, `_codecs encode`, `__builtin__ set`,
`collections OrderedDict`, `torch._utils _rebuild_tensor_v2` / `_rebuild_parameter` and
`torch FloatStorage` / `HalfStorage` / `LongStorage`.

pytorch_lightning need not be installed: a stub class is registered under its module name, so the
pickle names it exactly as a real checkpoint does. numpy 2 pickles name `numpy._core.multiarray`;
the released files (numpy 1.x) say `numpy.core.multiarray`, which this script writes (the GLOBAL
opcode's text is rewritten; protocol 2, as torch.save uses).

The .json note lists the state_dict's keys with dtype, shape and values (flattened, row-major), the
tensors diffuse must load; nothing else in the file is a tensor it should return.

Usage: /opt/refenv/bin/python tools/reference/make_lightning_ckpt.py [<out dir>]
  default: tests/data/reference/inputs/ckpt/. Deterministic (fixed values, no RNG).
"""
import collections
import io
import json
import os
import pickle
import sys
import types

import numpy as np
import torch


def _install_lightning_stub():
    names = ["pytorch_lightning", "pytorch_lightning.callbacks",
             "pytorch_lightning.callbacks.model_checkpoint"]
    mods = [types.ModuleType(n) for n in names]
    for parent, child in zip(mods, mods[1:]):
        setattr(parent, child.__name__.rsplit(".", 1)[1], child)
        sys.modules.setdefault(parent.__name__, parent)
    sys.modules.setdefault(mods[-1].__name__, mods[-1])

    class ModelCheckpoint:
        def __init__(self):
            self.monitor = None
            self.save_top_k = -1
            self.dirpath = "/fsx/stable-diffusion/logs/checkpoints"
            self.best_model_score = None
            self.kth_value = torch.tensor(float("inf"))

    ModelCheckpoint.__module__ = mods[-1].__name__
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    mods[-1].ModelCheckpoint = ModelCheckpoint
    return ModelCheckpoint


class _Pickler(pickle.Pickler):
    """pickle.Pickler writing numpy 1.x's module names, as the released checkpoints have them."""

    def __init__(self, file, protocol=None):
        super().__init__(file, protocol)
        self._out = file

    def dump(self, obj):
        super().dump(obj)
        data = self._out.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
        self._out.seek(0)
        self._out.truncate()
        self._out.write(data)


_pickle_module = types.SimpleNamespace(Pickler=_Pickler, __name__="pickle")


def _state_dict():
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8
    sd = collections.OrderedDict()
    sd["model.diffusion_model.time_embed.0.weight"] = base
    sd["model.diffusion_model.time_embed.0.bias"] = torch.nn.Parameter(torch.tensor([0.5, -1.5, 2.0]))
    sd["model.diffusion_model.out.2.weight"] = base.t()  # a strided view of a shared storage
    sd["first_stage_model.decoder.conv_in.bias"] = torch.tensor([1.0, 2.0], dtype=torch.float16)
    sd["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(4).unsqueeze(0)
    sd["model_ema.decay"] = torch.tensor(0.9999)
    return sd


def build(out_dir):
    ModelCheckpoint = _install_lightning_stub()
    sd = _state_dict()
    ckpt = {
        "epoch": 6,
        "global_step": 470000,
        "pytorch-lightning_version": "1.4.2",
        "state_dict": sd,
        "callbacks": {ModelCheckpoint: {"monitor": None, "best_model_score": None,
                                        "best_model_path": "", "current_score": None}},
        "checkpoint_callback": ModelCheckpoint(),
        "optimizer_states": [{"state": {0: {"step": 470000, "exp_avg": torch.full((64,), 0.25)}},
                              "param_groups": [{"lr": np.float64(1e-4), "params": [0]}]}],
        "lr_schedulers": [{"base_lrs": [np.float32(1e-4)], "last_epoch": np.int64(6),
                           "warmup": np.arange(3, dtype=np.float64), "seen": {1, 2}}],
    }
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "lightning-sd1-tiny.ckpt")
    torch.save(ckpt, path, pickle_module=_pickle_module, pickle_protocol=2)
    note = {
        "source": "tools/reference/make_lightning_ckpt.py",
        "torch": torch.__version__, "numpy": np.__version__,
        "state_dict": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape),
                           "values": v.detach().flatten().tolist()} for k, v in sd.items()},
    }
    with open(os.path.join(out_dir, "lightning-sd1-tiny.json"), "w") as f:
        json.dump(note, f, indent=1)
        f.write("\n")
    with open(path, "rb") as f:
        raw = f.read()
    for g in [b"pytorch_lightning.callbacks.model_checkpoint\nModelCheckpoint", b"numpy.core.multiarray\nscalar",
              b"numpy.core.multiarray\n_reconstruct", b"_codecs\nencode", b"__builtin__\nset"]:
        assert g in raw, g
    print(path, len(raw), "bytes")


if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    build(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests/data/reference/inputs/ckpt"))
