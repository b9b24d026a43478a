"""The README's depth-prior table: the default recipe with each depth option (and Adam),
against the default recipe trained the same way.

Run: ``python reports/experiments/depth_priors/summarise.py``. Every ``<variant>_s<seed>/``
folder holds the evaluate stage's ``metrics.json`` and ``views.csv`` (dense points,
``-S evaluate.mesh=false -S evaluate.baselines=false``) of one model trained on the
default garment set with ``params.yaml`` plus the variant's overrides (``run.json``
records them) and its training curves (``train/*.tsv``). ``default_s*`` is the control:
``params.yaml`` of its day (two stacks, 3100 + 390 steps; until 2026-12-06), trained on the same machine, data and thread setting as the
variants; changes are against its mean. The last row is the default's three seeds of the
learning curve (``../learning_curve/steps3490_seed*``: another machine, another
preprocessing), for reference. Values: paper Chamfer / P2S x1e-3 (mean +- sample std over
seeds), default test set (18 garments x 3 yaws) and style-shifted set (12 x 3).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = HERE.parent / "learning_curve"
COLUMNS = (("test", "paper_chamfer_1e3"), ("test", "paper_p2s_1e3"), ("shifted", "paper_chamfer_1e3"),
           ("shifted", "paper_p2s_1e3"), ("test", "side_iou"), ("test", "grad_cos"))


def _points(folder: Path) -> dict[str, dict]:
    m = json.loads((folder / "metrics.json").read_text())
    return {"test": m["anchorudf_points"], "shifted": m["shifted"]["anchorudf_points"]}


def load() -> dict[str, list[dict]]:
    """{variant: [per-seed metrics]} with the default first."""
    runs: dict[str, list[dict]] = {"default": []}
    for d in sorted(p for p in HERE.iterdir() if (p / "metrics.json").is_file()):
        variant = d.name.rsplit("_s", 1)[0]
        runs.setdefault(variant, []).append(_points(d))
    runs[REFERENCE] = [_points(d) for d in sorted(BASELINE.glob("steps3490_seed*"))]
    return runs


REFERENCE = "default, learning-curve seeds (another machine and preprocessing)"


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"


def table(runs: dict[str, list[dict]]) -> list[str]:
    lines = ["| variant | seeds | test Chamfer | test P2S | shifted Chamfer | shifted P2S | side IoU | grad cos "
             "| vs the default's mean: test Chamfer / P2S, shifted Chamfer / P2S |",
             "|---|---|---|---|---|---|---|---|---|"]
    base = {c: statistics.mean(r[c[0]][c[1]] for r in runs["default"] or runs[REFERENCE]) for c in COLUMNS}
    for variant, seeds in runs.items():
        if not seeds:
            continue
        cells = [_mean_sd([r[split][key] for r in seeds]) for split, key in COLUMNS]
        change = [f"{100 * (statistics.mean(r[c[0]][c[1]] for r in seeds) / base[c] - 1):+.1f}%"
                  for c in COLUMNS[:4]]
        lines.append(f"| {variant} | {len(seeds)} | " + " | ".join(cells) + " | "
                     + ("" if variant == "default" else " / ".join(change)) + " |")
    return lines


if __name__ == "__main__":
    print("\n".join(table(load())))
