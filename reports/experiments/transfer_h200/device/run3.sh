#!/usr/bin/env bash
# Device run: 2 recipes x 3 seeds trained at once, each for the same wall-clock budget.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .devrun/whl/*.whl || echo "pip failed"
export PYTHONPATH=/tmp/site:$PWD:$PWD/.devrun/shim
tar xf .devrun/data/render.tar -C .devrun/data
nvidia-smi -L; nproc
A="train.udf_clamp=target"
B="train.udf_clamp=target train.rotate_jitter=15 train.scale_jitter=0.15"
for r in A B; do for s in 0 1 2; do
  EX=${!r}
  TAG=$r$s RUN=/tmp/run_$r$s WORKERS=${WORKERS:-2} EXTRA="$EX train.seed=$s" \
    timeout ${HARD:-540} python3 .devrun/train_gpu.py ${BUDGET:-480} 24 0.0005 > /tmp/log_$r$s.txt 2>&1 &
done; done
sleep 120; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv; uptime
wait
for r in A B; do for s in 0 1 2; do
  echo "== $r$s"; grep "\[dev\]" /tmp/log_$r$s.txt | cut -c1-400; tail -2 /tmp/log_$r$s.txt | cut -c1-300
  mkdir -p $OUT/$r$s; cp /tmp/log_$r$s.txt $OUT/$r$s/log.txt
  if [ ! -f $OUT/$r$s/model/model.safetensors ]; then
    c=$(ls -d /tmp/run_$r$s/run/checkpoints/step_* 2>/dev/null | tail -1); echo "no final model; latest checkpoint: $c"
    [ -n "$c" ] && mkdir -p $OUT/$r$s/ckpt && cp $c/* $OUT/$r$s/ckpt/
  fi
done; done
