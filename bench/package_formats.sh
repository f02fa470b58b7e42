#!/usr/bin/env bash
# Measures diffuse packages per precision on the full-size SD 1.5 architecture with rule weights
# (docs/FORMATS.md): conversion time and peak RSS, size on disk, load time, UNet step and VAE
# decode time, peak RSS of a bench run, and the PSNR of a 2-step 256x256 image against the
# float32 model's (PSNR with numpy/PIL when a python3 with them is given as $PYTHON).
#   bash bench/package_formats.sh WORKDIR [precision...]   (default: f16 bf16 int8 palette8 palette6 palette4)
set -euo pipefail
work=${1:?usage: package_formats.sh WORKDIR [precision...]}
shift
precisions=("$@")
[ ${#precisions[@]} -gt 0 ] || precisions=(f16 bf16 int8 palette8 palette6 palette4)
bin=${DIFFUSE:-./build/bin/diffuse}
configs=${CONFIGS:-../shared/configs/sd15}
mkdir -p "$work"
[ -d "$work/sd15" ] || "$bin" synth --config "$configs" -o "$work/sd15" >/dev/null

run_model() {  # name folder
  local name=$1 dir=$2
  "$bin" bench --model "$dir" --width 256 --height 256 --steps 2 --threads 2 --json \
    >"$work/$name.bench.json" 2>/dev/null
  "$bin" generate --model "$dir" --prompt "a lighthouse at dusk" --width 256 --height 256 \
    --steps 2 --seed 1 --threads 2 -o "$work/$name.png" >/dev/null 2>&1
}

run_model f32 "$work/sd15"
for p in "${precisions[@]}"; do
  rm -rf "$work/sd15-$p"
  /usr/bin/time -f "%e %M" -o "$work/$p.convert-time" "$bin" convert "$work/sd15" \
    -o "$work/sd15-$p" --precision "$p" --json >"$work/$p.convert.json" 2>/dev/null
  run_model "$p" "$work/sd15-$p"
done

python=${PYTHON:-python3}
"$python" - "$work" f32 "${precisions[@]}" <<'PY'
import json, sys, os
work, names = sys.argv[1], sys.argv[2:]
try:
    import numpy as np
    from PIL import Image
    ref = np.asarray(Image.open(f"{work}/f32.png"), dtype=np.float64)
except Exception:
    np = None
print("| precision | on disk | convert | load | UNet step 256² | VAE decode 256² | peak RSS (bench) | PSNR vs f32 |")
print("|---|---|---|---|---|---|---|---|")
for n in names:
    b = json.load(open(f"{work}/{n}.bench.json"))
    rss = b["peak_rss_mib"]
    if n == "f32":
        disk = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(f"{work}/sd15") for f in fs)
        conv = "-"
    else:
        c = json.load(open(f"{work}/{n}.convert.json"))
        disk = sum(x["disk_bytes"] for x in c["components"])
        secs, kb = open(f"{work}/{n}.convert-time").read().split()
        conv = f"{float(secs):.0f} s, {int(kb)/1024/1024:.1f} GiB"
    psnr = "-"
    if np is not None and n != "f32":
        img = np.asarray(Image.open(f"{work}/{n}.png"), dtype=np.float64)
        mse = ((img - ref) ** 2).mean()
        psnr = "inf" if mse == 0 else f"{10 * np.log10(255 ** 2 / mse):.1f} dB"
    print(f"| {n} | {disk/2**30:.2f} GiB | {conv} | {b['load_s']:.1f} s | "
          f"{b['unet_step_best_s']:.2f} s | {b['vae_decode_s']:.2f} s | {rss:.0f} MiB | {psnr} |")
PY
