#!/usr/bin/env bash
# Every GPU benchmark in one run, figures to bench_out/gpu_<date>/ (one .txt per benchmark) and stdout:
# SD2 stage img/s and MFU over dtype / compile / batch, ICON, end to end (ICON-R + SD2) for both runners
# with the GPU busy fraction and peak memory, and the classifiers. Needs CUDA and nvidia-smi.
#   bash bench/bench_gpu_all.sh            # about 25-40 min on an H100/H200 (SD2 grid dominates)
#   QUICK=1 bash bench/bench_gpu_all.sh    # about 8 min: fewer SD2 configurations, 64 images end to end
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH="$PWD:$PWD/tests:$PWD/bench${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT_DIR:-bench_out/gpu_$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
uptime | tee -a "$OUT/device.txt"
run() { local name=$1; shift; echo "== $name: $*"; "$PY" "$@" 2>&1 | tee "$OUT/$name.txt"; }
if [[ -n "${QUICK:-}" ]]; then
  run sd2 bench/bench_sd2_gpu.py --no-naive --dtypes fp16,bf16 --compile off --batches 8,32
  run sd2_compile bench/bench_sd2_gpu.py --no-naive --dtypes bf16 --compile on --batches 32
  run sd2_graphs bench/bench_sd2_gpu.py --no-naive --dtypes bf16 --compile on --compile-mode reduce-overhead --batches 32
  run sd2_vae bench/bench_sd2_gpu.py --no-naive --dtypes bf16 --compile off --vae-batch 8 --batches 48
  run e2e bench/bench_e2e_gpu.py --images 64
else
  run sd2 bench/bench_sd2_gpu.py --batches 1,8,16,32,48,64 --iters 2
  run sd2_graphs bench/bench_sd2_gpu.py --no-naive --dtypes fp16,bf16 --compile on --compile-mode reduce-overhead --batches 32,48
  run sd2_vae bench/bench_sd2_gpu.py --no-naive --dtypes bf16 --compile both --vae-batch 8 --batches 48,64,96
  run e2e bench/bench_e2e_gpu.py --images 256
  run icon bench/bench_icon_gpu.py
  run classifiers bench/bench_classifiers.py --device cuda
fi
echo "figures in $OUT"
