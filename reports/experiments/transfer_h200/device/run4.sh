#!/usr/bin/env bash
# Device run: the GPU recipe (udf_clamp target) on the OLD 60-garment default set, 3 seeds at
# once, the same fixed schedule as run3's A0 (2835 + 354 steps at batch 24).
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .devrun/whl/*.whl || echo "pip failed"
export PYTHONPATH=/tmp/site:$PWD:$PWD/.devrun/shim
tar xf .devrun/data/render.tar -C .devrun/data
for s in 0 1 2; do
  OUT=/tmp/devout TAG=O$s RUN=/tmp/run_O$s WORKERS=4 SPS=0.1 STEPS=2835,354 EXTRA="train.udf_clamp=target train.seed=$s" \
    timeout ${HARD:-400} python3 .devrun/train_gpu.py 1000 24 0.0005 > /tmp/log_O$s.txt 2>&1 &
done
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv; grep -h "step" /tmp/run_O0/run/live/metrics.jsonl 2>/dev/null | tail -1 | cut -c1-200
wait
for s in 0 1 2; do
  echo "== O$s"; grep "\[dev\]" /tmp/log_O$s.txt | cut -c1-300; tail -2 /tmp/log_O$s.txt | cut -c1-300
  (cd /tmp && tar cf $OUT/O$s.tar run_O$s/run/model run_O$s/run/live/metrics.jsonl log_O$s.txt 2>&1 | head -2)
done
ls -la $OUT
