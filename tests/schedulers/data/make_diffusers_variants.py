"""Writes diffusers_variants.safetensors: diffusers' own scheduler code run on configurations the
shared golden fixtures do not cover (solver orders, algorithm and solver types, sigma spacings,
thresholding, img2img starts), with the golden rollout's fake model.

Usage: python3 make_diffusers_variants.py <schedulers dir> <shared/fixtures> <betas dir> <out>

<schedulers dir> holds diffusers' src/diffusers/schedulers/scheduling_*.py (commit 58eb52c, as the
golden fixtures). Needs torch and numpy only: the four scheduler modules are loaded with minimal
stand-ins for the diffusers helpers they import. numpy runs with NEP 50 promotion (numpy 2's rule,
which the golden fixtures were made under). <betas dir> holds scaled_linear.json / linear.json /
squaredcos_cap_v2.json, our NoiseSchedule's betas, passed as trained_betas so that only the
scheduler logic is compared even where an older torch rounds torch.linspace differently.
"""
import dataclasses, enum, functools, importlib.util, inspect, json, math, struct, sys, types

import numpy as np
import torch

if hasattr(np, "_set_promotion_state"):
    np._set_promotion_state("weak")

src, fixtures, betas_dir, out_path = sys.argv[1:5]


def stub_package():
    def register_to_config(init):
        @functools.wraps(init)
        def inner(self, *args, **kwargs):
            bound = inspect.signature(init).bind(self, *args, **kwargs)
            bound.apply_defaults()
            self._internal_dict = {k: v for k, v in bound.arguments.items() if k != "self"}
            init(self, *args, **kwargs)
        return inner

    class ConfigMixin:
        @property
        def config(self):
            return types.SimpleNamespace(**self._internal_dict)

        def register_to_config(self, **kwargs):
            self._internal_dict.update(kwargs)

    class SchedulerMixin:
        pass

    class BaseOutput:
        pass

    @dataclasses.dataclass
    class SchedulerOutput:
        prev_sample: torch.Tensor

    mods = {
        "diffusers": {},
        "diffusers.configuration_utils": {"ConfigMixin": ConfigMixin, "register_to_config": register_to_config},
        "diffusers.utils": {"deprecate": lambda *a, **k: None, "is_scipy_available": lambda: False,
                            "BaseOutput": BaseOutput},
        "diffusers.utils.torch_utils": {
            "randn_tensor": lambda shape, generator=None, device=None, dtype=None, layout=None:
                torch.randn(shape, generator=generator, dtype=dtype)},
        "diffusers.schedulers": {},
        "diffusers.schedulers.scheduling_utils": {
            "KarrasDiffusionSchedulers": enum.Enum("KarrasDiffusionSchedulers", "DDIMScheduler"),
            "SchedulerMixin": SchedulerMixin, "SchedulerOutput": SchedulerOutput},
    }
    for name, attrs in mods.items():
        m = types.ModuleType(name)
        m.__path__ = []
        m.__dict__.update(attrs)
        sys.modules[name] = m


def load_class(module, cls):
    name = "diffusers.schedulers." + module
    spec = importlib.util.spec_from_file_location(name, f"{src}/{module}.py")
    m = importlib.util.module_from_spec(spec)
    sys.modules[name] = m
    spec.loader.exec_module(m)
    return getattr(m, cls)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k != "__metadata__":
            b, e = v["data_offsets"]
            out[k] = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float32).reshape(v["shape"])
    return out


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        raw = t.contiguous().numpy().tobytes()
        dtype = {torch.float32: "F32", torch.float64: "F64"}[t.dtype]
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


stub_package()
D = load_class("scheduling_dpmsolver_multistep", "DPMSolverMultistepScheduler")
U = load_class("scheduling_unipc_multistep", "UniPCMultistepScheduler")
K = load_class("scheduling_k_dpm_2_discrete", "KDPM2DiscreteScheduler")
KA = load_class("scheduling_k_dpm_2_ancestral_discrete", "KDPM2AncestralDiscreteScheduler")
golden = read_safetensors(f"{fixtures}/golden/sched-dpmpp-2m.safetensors")
init, fixed = golden["init"], golden["fixed"]
SD = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
cases = [  # name, class, config (over SD 1.5's betas unless it sets beta_schedule), steps, img2img start
    ("dpm-o3", D, {"solver_order": 3}, 20, None),
    ("dpm-o3-7", D, {"solver_order": 3, "final_sigmas_type": "sigma_min"}, 7, None),
    ("dpm-o2-7", D, {}, 7, None),
    ("dpm-o1", D, {"solver_order": 1}, 12, None),
    ("dpm-heun", D, {"solver_type": "heun"}, 20, None),
    ("dpm-heun-o3", D, {"solver_type": "heun", "solver_order": 3}, 20, None),
    ("dpm-nopp", D, {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-nopp-heun", D, {"algorithm_type": "dpmsolver", "solver_type": "heun", "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-nopp-o3", D, {"algorithm_type": "dpmsolver", "solver_order": 3, "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-nopp-v", D, {"algorithm_type": "dpmsolver", "prediction_type": "v_prediction", "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-nopp-sample", D, {"algorithm_type": "dpmsolver", "prediction_type": "sample", "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-sde", D, {"algorithm_type": "sde-dpmsolver", "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-sde-heun", D, {"algorithm_type": "sde-dpmsolver", "solver_type": "heun", "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-sdepp-heun", D, {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun"}, 20, None),
    ("dpm-sdepp-o3", D, {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}, 20, None),
    ("dpm-thresh", D, {"thresholding": True, "sample_max_value": 1.5, "dynamic_thresholding_ratio": 0.9}, 20, None),
    ("dpm-nopp-thresh", D, {"algorithm_type": "dpmsolver", "thresholding": True, "sample_max_value": 1.5,
                            "dynamic_thresholding_ratio": 0.9, "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-karras-trailing", D, {"use_karras_sigmas": True, "timestep_spacing": "trailing", "euler_at_final": True}, 25, None),
    ("dpm-karras-sigmamin", D, {"use_karras_sigmas": True, "final_sigmas_type": "sigma_min"}, 20, None),
    ("dpm-lu", D, {"use_lu_lambdas": True}, 20, None),
    ("dpm-exp", D, {"use_exponential_sigmas": True}, 20, None),
    ("dpm-cos-clip", D, {"beta_schedule": "squaredcos_cap_v2", "lambda_min_clipped": -5.1}, 20, None),
    ("dpm-leading", D, {"timestep_spacing": "leading", "steps_offset": 1}, 20, None),
    ("dpm-trailing-v-zsnr", D, {"timestep_spacing": "trailing", "prediction_type": "v_prediction",
                                "rescale_betas_zero_snr": True}, 20, None),
    ("dpm-trailing-30", D, {"timestep_spacing": "trailing"}, 30, None),
    ("dpm-sample", D, {"prediction_type": "sample"}, 20, None),
    ("dpm-img2img", D, {}, 20, 8),
    ("dpm-img2img-karras", D, {"use_karras_sigmas": True}, 20, 12),
    ("dpm-sde-img2img", D, {"algorithm_type": "sde-dpmsolver++"}, 20, 6),
    ("unipc-o3", U, {"solver_order": 3}, 20, None),
    ("unipc-o3-8", U, {"solver_order": 3}, 8, None),
    ("unipc-o1", U, {"solver_order": 1}, 12, None),
    ("unipc-bh1-sigmamin", U, {"solver_type": "bh1", "final_sigmas_type": "sigma_min"}, 20, None),
    ("unipc-nox0", U, {"predict_x0": False, "final_sigmas_type": "sigma_min"}, 20, None),
    ("unipc-nox0-v-o3", U, {"predict_x0": False, "prediction_type": "v_prediction", "solver_order": 3,
                            "final_sigmas_type": "sigma_min"}, 20, None),
    ("unipc-bh1-nox0-o3", U, {"solver_type": "bh1", "predict_x0": False, "final_sigmas_type": "sigma_min",
                              "solver_order": 3}, 20, None),
    ("unipc-disable", U, {"disable_corrector": [0, 3, 7]}, 20, None),
    ("unipc-karras", U, {"use_karras_sigmas": True, "final_sigmas_type": "sigma_min"}, 20, None),
    ("unipc-karras-minmax", U, {"use_karras_sigmas": True, "sigma_min": 0.05, "sigma_max": 10.0}, 20, None),
    ("unipc-exp", U, {"use_exponential_sigmas": True}, 20, None),
    ("unipc-v-trailing", U, {"prediction_type": "v_prediction", "timestep_spacing": "trailing"}, 20, None),
    ("unipc-leading", U, {"timestep_spacing": "leading", "steps_offset": 1}, 20, None),
    ("unipc-no-lower-final", U, {"lower_order_final": False, "solver_order": 3, "final_sigmas_type": "sigma_min"}, 10, None),
    ("unipc-thresh", U, {"thresholding": True, "sample_max_value": 1.5, "dynamic_thresholding_ratio": 0.9}, 20, None),
    ("unipc-sample", U, {"prediction_type": "sample"}, 20, None),
    ("unipc-img2img", U, {}, 20, 7),
    ("kdpm2-v", K, {"prediction_type": "v_prediction"}, 20, None),
    ("kdpm2-karras", K, {"use_karras_sigmas": True}, 20, None),
    ("kdpm2-exp", K, {"use_exponential_sigmas": True}, 20, None),
    ("kdpm2-leading", K, {"timestep_spacing": "leading", "steps_offset": 1}, 20, None),
    ("kdpm2-trailing", K, {"timestep_spacing": "trailing"}, 25, None),
    ("kdpm2-linear", K, {"beta_schedule": "linear"}, 15, None),
    ("kdpm2-img2img", K, {}, 20, 8),
    ("kdpm2a-v", KA, {"prediction_type": "v_prediction"}, 20, None),
    ("kdpm2a-karras", KA, {"use_karras_sigmas": True}, 20, None),
    ("kdpm2a-leading", KA, {"timestep_spacing": "leading", "steps_offset": 1}, 12, None),
    ("kdpm2a-img2img", KA, {}, 20, 5),
]
tensors, index = {}, []
for name, cls, config, steps, begin in cases:
    config = dict(config) if "beta_schedule" in config else {**SD, **config}
    if cls in (K, KA) and config["beta_schedule"] == "linear":
        config.setdefault("beta_start", 0.00085)
        config.setdefault("beta_end", 0.012)
    betas = json.load(open(f"{betas_dir}/{config['beta_schedule']}.json"))
    s = cls(**config, trained_betas=betas)
    s.set_timesteps(steps)
    gen = torch.Generator().manual_seed(103)
    start = 0 if begin is None else begin * s.order
    ts = s.timesteps[start:]
    if begin is None:
        x = init * s.init_noise_sigma
    else:
        s.set_begin_index(start)
        x = s.add_noise(init, fixed, ts[:1])
    for t in ts:
        xin = s.scale_model_input(x, t)
        eps = 0.5 * xin + 0.3 * torch.sin(t / 100) * fixed
        kw = {"generator": gen} if cls in (D, KA) else {}
        x = s.step(eps, t, x, **kw).prev_sample
    assert not torch.isnan(x).any(), name
    tensors[name + ".timesteps"] = s.timesteps.to(torch.float64)
    tensors[name + ".final"] = x
    index.append({"name": name, "class": cls.__name__, "config": config, "steps": steps, "begin": begin})
meta = {"source": "diffusers 58eb52c scheduler sources on torch %s, numpy %s (NEP 50)" % (
            torch.__version__, np.__version__),
        "cases": index}
write_safetensors(out_path, tensors, {"json": json.dumps(meta)})
print(len(index), "cases written to", out_path)
