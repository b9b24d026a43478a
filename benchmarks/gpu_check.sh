#!/usr/bin/env bash
# GPU readiness check, one NVIDIA GPU, under 5 minutes (each step also has a time limit):
#   1. EGL render of 36 views at 512 px, masks compared with OSMesa's (same garment, views)
#   2. 50 CUDA training steps of the paper preset (AnchorUDF-HD: main, GDA and HD phases;
#      synthetic data at 1024 px), AMP on and off:
#      finite losses, time per step
#   3. torchrun: an NCCL process group (all_reduce, all_gather) and
#      `torchrun --nproc_per_node=1 -m anchorudf train --synthetic` (paper preset)
#   4. dense_point_cloud of 900k points through the model trained in 2
# Prints one table; exits 1 on any failure or mismatch, 3 at once without a CUDA device.
#
#   bash benchmarks/gpu_check.sh [WORK_DIR]        (default: a new temporary folder)
# Environment: PYTHON (default .venv/bin/python, else python3), GPU_CHECK_NPROC (torchrun
# processes, default 1; 2 or more also exercise DDP).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
HELPER=benchmarks/gpu_check.py
NPROC=${GPU_CHECK_NPROC:-1}

# Fail fast without a GPU: no nvidia-smi, or it lists none, or torch sees no CUDA device.
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q GPU; then
  echo "gpu_check: no CUDA device: nvidia-smi is missing or lists no NVIDIA GPU; this check needs one GPU" >&2
  exit 3
fi
"$PY" "$HELPER" preflight || exit $?

WORK=${1:-$(mktemp -d -t anchorudf-gpu-check.XXXXXX)}
mkdir -p "$WORK"
TABLE="$WORK/table.jsonl"
rm -f "$TABLE"
export GPU_CHECK_TABLE="$TABLE"
echo "[gpu_check] work folder $WORK"

step() {  # step SECONDS CMD...: run with a time limit; a crash or timeout leaves no row
  local limit=$1
  shift
  timeout --kill-after=10 "$limit" "$@" || echo "[gpu_check] step exited $?: $*" >&2
}

step 60 "$PY" "$HELPER" render --backend egl --out "$WORK/egl.npz"
step 60 "$PY" "$HELPER" render --backend osmesa --out "$WORK/osmesa.npz"
[ -f "$WORK/egl.npz" ] && [ -f "$WORK/osmesa.npz" ] && step 30 "$PY" "$HELPER" compare "$WORK/egl.npz" "$WORK/osmesa.npz"
step 75 "$PY" "$HELPER" train --amp on --work "$WORK"
step 75 "$PY" "$HELPER" train --amp off --work "$WORK"
step 30 "$PY" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" "$HELPER" nccl
step 60 "$PY" "$HELPER" torchrun --nproc "$NPROC" --work "$WORK"
step 60 "$PY" "$HELPER" dense --model "$WORK/train-amp-on/run/model"

"$PY" "$HELPER" table --expect "render egl" "render osmesa" "masks egl=osmesa" "train amp on" \
  "train amp off" "nccl" "torchrun train" "dense 900k"
