#!/usr/bin/env bash
# The CUDA backend's checks, on a machine with an NVIDIA GPU, from .gpu/bundle.tar.xz (made by
# scripts/gpu_bundle.sh on a machine with the Debian libraries): every op against the reference
# backend, the tiny pipeline goldens on the GPU, and the full-size SD 1.5 architecture's speed
# (rule weights made there by `diffuse synth`), then a short table. Under 8 minutes.
#   bash scripts/gpu_check.sh [OUT_DIR]      (logs and the table go to OUT_DIR, default $OUT or /tmp)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp}}
mkdir -p "$out"
work=/tmp/diffuse-gpu
rm -rf "$work" && mkdir -p "$work"
tar -C "$work" -xJf .gpu/bundle.tar.xz || { echo "gpu_check: no .gpu/bundle.tar.xz (carry .gpu)"; exit 1; }
fixtures=$(cat "$work/fixtures_path")
if [ ! -e "$fixtures" ]; then  # a machine without the fixtures (never replace real ones)
  mkdir -p "$(dirname "$fixtures")"
  ln -s "$work/fixtures" "$fixtures"
fi
# cuBLAS: the toolkit's, or NVIDIA's Python wheel's.
cublas=$(find /usr/local/cuda*/lib* /opt /usr/lib -name 'libcublas.so.1[0-9]*' 2>/dev/null | head -1)
export LD_LIBRARY_PATH="$work/lib${cublas:+:$(dirname "$cublas")}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bin=$work/bin
echo "bundle $(cat "$work/commit"), cuBLAS ${cublas:-not found}" | tee "$out/gpu_check.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee -a "$out/gpu_check.log"
"$bin/diffuse" info --system 2>&1 | tee -a "$out/gpu_check.log"

step() {  # name command...: runs it with a time limit, logs it, records pass/fail
  local name=$1; shift
  local t0=$SECONDS
  timeout 240 "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "| $name | $([ $rc = 0 ] && echo pass || echo "FAIL ($rc)") | $((SECONDS - t0)) s |" >>"$out/table.md"
  tail -5 "$out/$name.log"
}
echo "| check | result | time |" >"$out/table.md"
echo "|---|---|---|" >>"$out/table.md"
step ops "$bin/test_backend" --gtest_filter='*cuda*:backend_registry.*'
step goldens "$bin/test_pipeline" --gtest_filter='*PipelineGolden*cuda*'
"$bin/diffuse" synth --config "$work/configs/sd15" --out "$work/sd15" >/dev/null 2>&1
step bench512 "$bin/diffuse" bench -m "$work/sd15" --backend cuda -W 512 -H 512 --steps 20 --json
step generate20 "$bin/diffuse" generate -m "$work/sd15" --backend cuda -W 512 -H 512 --steps 20 \
  --scheduler dpmpp-2m -p "a lighthouse at dusk" -o "$out/sd15-cuda.png"
cat "$out/table.md" | tee -a "$out/gpu_check.log"
grep -h -E '"(unet_step_best_s|vae_decode_s|text_encoder_s|load_s|peak_rss_mib)"' \
  "$out/bench512.log" | tee -a "$out/gpu_check.log"
