#!/usr/bin/env python3
"""diffuse against diffusers on PyTorch, one after another on the same machine and model folder.

Runs `diffuse bench --json` and the same stages in diffusers (text encoder, one UNet evaluation
with classifier-free guidance, VAE decode) on a `diffuse synth` folder, interleaved (diffuse,
diffusers, diffuse, ...), each run in its own process so that peak RSS is that engine's alone, at
each size, with the same thread count, float32. Prints the best of the rounds per engine and the
ratios, plus the machine's sgemm rate that diffuse measured in the same run.

diffusers is optional: without torch/diffusers importable by --python, only diffuse is timed.

Usage:
  python3 bench/compare.py --model /tmp/sd15-f32 [--binary build/bin/diffuse] [--sizes 256,512]
      [--rounds 3] [--threads 2] [--precision f32|bf16|int8] [--python /opt/refenv/bin/python]
      [--json]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time


def diffusers_worker(model, size, threads, steps, dtype_name):
    """Runs in a child process: times diffusers' stages and prints one JSON line."""
    import torch
    from diffusers import StableDiffusionPipeline

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    t0 = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(model, torch_dtype=dtype,
                                                   safety_checker=None,
                                                   requires_safety_checker=False)
    load_s = time.perf_counter() - t0
    prompt = "a photograph of an astronaut riding a horse on mars, highly detailed"
    with torch.inference_mode():
        t0 = time.perf_counter()
        cond, uncond = pipe.encode_prompt(prompt, "cpu", 1, True, "")
        text_s = time.perf_counter() - t0
        context = torch.cat([uncond, cond])
        latents = torch.randn(2, 4, size // 8, size // 8,
                              generator=torch.Generator().manual_seed(1)).to(dtype)
        steps_s = []
        for i in range(steps):
            t0 = time.perf_counter()
            pipe.unet(latents, 999 - i, encoder_hidden_states=context)
            steps_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pipe.vae.decode(latents[:1] / pipe.vae.config.scaling_factor)
        vae_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"load_s": load_s, "text_encoder_s": text_s, "unet_step_s": steps_s,
                      "unet_step_best_s": min(steps_s), "vae_decode_s": vae_s,
                      "peak_rss_mib": peak, "torch": torch.__version__,
                      "diffusers": __import__("diffusers").__version__}))


def run_json(cmd, env=None):
    """The JSON object a command prints (anything printed before it is skipped)."""
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out[out.index("{"):])


def diffusers_available(python):
    probe = subprocess.run([python, "-c", "import torch, diffusers"], capture_output=True)
    return probe.returncode == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a diffusers folder (diffuse synth writes one)")
    ap.add_argument("--binary", default="build/bin/diffuse")
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=2, help="UNet evaluations timed per run")
    ap.add_argument("--python", default=sys.executable, help="the Python that has diffusers")
    ap.add_argument("--precision", default="f32", choices=["f32", "bf16", "int8"],
                    help="diffuse's --precision; diffusers runs in bfloat16 for bf16, else float32")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        peer_dtype = "bfloat16" if args.precision == "bf16" else "float32"
        diffusers_worker(args.model, args.worker, args.threads, args.steps, peer_dtype)
        return

    with_diffusers = diffusers_available(args.python)
    if not with_diffusers:
        print(f"note: {args.python} cannot import torch and diffusers; timing diffuse only",
              file=sys.stderr)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    results = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        runs = {"diffuse": [], "diffusers": []}
        for r in range(args.rounds):
            cmd = [args.binary, "bench", "--model", args.model, "-W", str(size), "-H", str(size),
                   "--steps", str(args.steps), "--threads", str(args.threads),
                   "--precision", args.precision, "--json"]
            runs["diffuse"].append(run_json(cmd))
            if with_diffusers:
                cmd = [args.python, os.path.abspath(__file__), "--model", args.model, "--worker",
                       str(size), "--threads", str(args.threads), "--steps", str(args.steps),
                       "--precision", args.precision]
                runs["diffusers"].append(run_json(cmd, env))
            print(f"{size}px round {r + 1}/{args.rounds} done", file=sys.stderr)
        best = {}
        for engine, rs in runs.items():
            if not rs:
                continue
            best[engine] = {k: min(x[k] for x in rs) for k in
                            ("text_encoder_s", "unet_step_best_s", "vae_decode_s", "peak_rss_mib")}
        best["sgemm_gflops"] = max(x["sgemm_gflops"] for x in runs["diffuse"])
        best["diffuse"]["unet_gflops"] = max(x["unet_gflops"] for x in runs["diffuse"])
        best["diffuse"]["vae_gflops"] = max(x["vae_gflops"] for x in runs["diffuse"])
        if runs["diffusers"]:
            best["versions"] = {k: runs["diffusers"][0][k] for k in ("torch", "diffusers")}
        results[size] = best

    if args.json:
        print(json.dumps(results, indent=2))
        return
    peer = "bfloat16" if args.precision == "bf16" else "float32"
    print(f"threads {args.threads}, best of {args.rounds} interleaved rounds, diffuse "
          f"--precision {args.precision}, diffusers {peer}, UNet batch 2 (CFG)")
    for size, b in results.items():
        d = b["diffuse"]
        print(f"\n{size}x{size}: sgemm {b['sgemm_gflops']:.0f} GFLOP/s; diffuse UNet "
              f"{d['unet_gflops']:.0f} GFLOP/s ({100 * d['unet_gflops'] / b['sgemm_gflops']:.0f}%"
              f" of sgemm), VAE {d['vae_gflops']:.0f} GFLOP/s")
        print(f"  {'stage':<16}{'diffuse':>12}{'diffusers':>12}{'ratio':>8}")
        for key, label in (("text_encoder_s", "text encoder"), ("unet_step_best_s", "UNet step"),
                           ("vae_decode_s", "VAE decode"), ("peak_rss_mib", "peak RSS MiB")):
            ours = d[key]
            theirs = b.get("diffusers", {}).get(key)
            ratio = f"{theirs / ours:.2f}x" if theirs else "-"
            theirs_s = f"{theirs:.3f}" if theirs else "-"
            print(f"  {label:<16}{ours:>12.3f}{theirs_s:>12}{ratio:>8}")


if __name__ == "__main__":
    main()
