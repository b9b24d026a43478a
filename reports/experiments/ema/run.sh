#!/usr/bin/env bash
# The EMA experiment: 3 training seeds of params.yaml's recipe, each keeping weight averages
# at decays 0.995 / 0.998 / 0.999 beside the optimizer's weights; every model scored by the
# evaluate stage (dense points; no mesh, no baselines). Run from the repository root after
# `dvc repro anchors` (the default garment set in data/). Writes runs/ema/s<seed>/.
# Run on 2026-12-01 for seed 0 only, stopped after raw / 0.998 / 0.999 were scored (no gain:
# README, "a weight average"); s0/<variant>/ here are copies of runs/ema/s0/metrics_*.json and
# eval_*/views.csv, s0/train/ of the run's dvclive curves.
set -euo pipefail
SEEDS=${SEEDS:-"0 1 2"}
for k in $SEEDS; do
  d=runs/ema/s$k
  if [ ! -f $d/model_raw/checksums.json ]; then
    python reports/experiments/ema/train_multi.py --extra 0.995 0.999 -- --data data --run-dir $d \
      --live-dir $d/live -S train.ema=0.998 -S train.seed=$k > $d.train.log 2>&1
  fi
  for m in model_raw model model_ema0.999 model_ema0.995; do
    [ -f $d/metrics_$m.json ] && continue
    anchorudf evaluate --data data --model $d/$m --out $d/eval_$m --recon $d/recon_$m \
      --metrics $d/metrics_$m.json -S evaluate.mesh=false -S evaluate.baselines=false > $d.eval_$m.log 2>&1
  done
done
