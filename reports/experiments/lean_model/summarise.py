"""The README's lean-model table: one hourglass stack instead of two, at the two-stack
control's steps and at 4800 + 600 steps (1.15x its training time on a quiet machine),
and that one-stack model with the depth head fed to the decoder (``model.depth_head``,
``model.depth_input``; ``stacks1_dinput``, the default since the stop after), and that
default with an ``abs`` output (``output_abs``, with ``train.udf_clamp=target``: with the
paper's clamp seed 0 died), and that default with ``model.depth_abs`` (``depth_abs``: the
decoder also reads abs(z - near) and abs(z - far) of the predicted depths), and that
default with ``train.lambda_depth`` 0.02 (``depth_weight``: the depth term's gradient on
the image encoder about the UDF term's instead of 59 times it; ``depth_balance.py``), and
that default with fewer query points per item and more steps (``points2000``: 4 x 2000,
1.3x the steps, the same CPU time at one thread; ``points2000w``: 4 x 2000, 1.12x the
steps, the same wall time at two threads; ``points1000``: 4 x 1000, 1.53x the steps),
against the two-stack recipe trained the same way.

Run: ``python reports/experiments/lean_model/summarise.py``. Every ``<variant>_s<seed>/``
folder holds the evaluate stage's ``metrics.json`` and ``views.csv`` (dense points,
``-S evaluate.mesh=false -S evaluate.baselines=false``) of one model trained on the
default garment set with ``params.yaml`` plus the variant's overrides (``run.json``
records them and the commands) and its training curves (``train/*.tsv``). The control is
``../depth_priors/default_s*``: the ``params.yaml`` of its day (two stacks, 3100 + 390
steps), trained on the same machine, data and thread setting. Values: paper Chamfer / P2S x1e-3 (mean +- sample std over seeds),
default test set (18 garments x 3 yaws) and style-shifted set (12 x 3); changes against
the control's mean.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("depth_priors_summary", HERE.parent / "depth_priors" / "summarise.py")
dp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dp)


def load() -> dict[str, list[dict]]:
    """{variant: [per-seed metrics]}: the control (``default``) first, then this folder's."""
    runs = {"default": [dp._points(d) for d in sorted(dp.HERE.glob("default_s*"))]}
    for d in sorted(p for p in HERE.iterdir() if (p / "metrics.json").is_file()):
        runs.setdefault(d.name.rsplit("_s", 1)[0], []).append(dp._points(d))
    order = list(LABELS)
    return dict(sorted(runs.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


#: Row labels of the README's table.
LABELS = {"default": "two stacks, 3100 + 390 (the default until 2026-12-06), the control",
          "stacks1_3490": "one stack, 3100 + 390 (the control's steps)",
          "stacks1_5400": "one stack, 4800 + 600 (the default of 2026-12-06)",
          "stacks1_dinput": "**one stack, 4800 + 600, depth head + depth input (the default now)**",
          "output_abs": "the default with `model.output=abs`, `train.udf_clamp=target`",
          "depth_abs": "the default with `model.depth_abs=true`",
          "depth_weight": "the default with `train.lambda_depth=0.02`",
          "depth_weight3": "the default with `train.lambda_depth=3` (2 threads)",
          "points2000": "the default with 4 x 2000 points, 6240 + 780 steps (its CPU time at one thread; 1.15x its time at two)",
          "points2000w": "the default with 4 x 2000 points, 5370 + 670 steps (its time at two threads)",
          "points1000": "the default with 4 x 1000 points, 7350 + 920 steps (its CPU time at one thread)"}


def labelled(lines: list[str]) -> list[str]:
    lines = [line.replace("vs the default's mean", "vs the control's mean") for line in lines]
    return [next((line.replace(f"| {k} |", f"| {v} |", 1) for k, v in LABELS.items()
                  if line.startswith(f"| {k} |")), line) for line in lines]


if __name__ == "__main__":
    print("\n".join(labelled(dp.table(load()))))
