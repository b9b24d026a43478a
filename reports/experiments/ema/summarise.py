"""The README's weight-average (train.ema) table: every training seed's models side by side.

Run: ``python reports/experiments/ema/summarise.py``. ``s<seed>/<variant>/`` holds the
evaluate stage's ``metrics.json`` and ``views.csv`` (dense points, ``-S evaluate.mesh=false
-S evaluate.baselines=false``) of one model of that seed's training run (``run.sh``):
``raw`` = the optimizer's final weights (what training exported before train.ema),
``ema0.995`` / ``ema0.998`` / ``ema0.999`` = the weight average at that decay, from the same
run. Values: paper Chamfer / P2S x1e-3, default test set (18 garments x 3 yaws) and
style-shifted set (12 x 3), mean +- sample std over seeds; the change against ``raw`` is
paired (per seed, then averaged), so the seeds' spread cancels.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = ("raw", "ema0.995", "ema0.998", "ema0.999")
COLUMNS = (("test", "paper_chamfer_1e3"), ("test", "paper_p2s_1e3"), ("shifted", "paper_chamfer_1e3"),
           ("shifted", "paper_p2s_1e3"), ("test", "side_iou"), ("test", "grad_cos"))


def load() -> dict[str, dict[str, dict]]:
    """{seed folder: {variant: {"test": points metrics, "shifted": points metrics}}}."""
    runs: dict[str, dict[str, dict]] = {}
    for seed in sorted(p for p in HERE.glob("s*") if p.is_dir()):
        got = {}
        for variant in VARIANTS:
            f = seed / variant / "metrics.json"
            if f.is_file():
                m = json.loads(f.read_text())
                got[variant] = {"test": m["anchorudf_points"], "shifted": m["shifted"]["anchorudf_points"]}
        if "raw" in got:
            runs[seed.name] = got
    return runs


def _mean_sd(values: list[float], digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} +- {statistics.stdev(values):.{digits}f}"


def table(runs: dict[str, dict[str, dict]]) -> list[str]:
    lines = ["| weights | seeds | test Chamfer | test P2S | shifted Chamfer | shifted P2S | side IoU | grad cos "
             "| paired change vs raw: test Chamfer / P2S, shifted Chamfer / P2S |",
             "|---|---|---|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        seeds = [s for s in runs if variant in runs[s]]
        if not seeds:
            continue
        cells = [_mean_sd([runs[s][variant][split][key] for s in seeds]) for split, key in COLUMNS]
        change = []
        for split, key in COLUMNS[:4]:
            rel = [runs[s][variant][split][key] / runs[s]["raw"][split][key] - 1 for s in seeds]
            change.append(f"{100 * statistics.mean(rel):+.1f}%" + (f" ({100 * min(rel):+.1f}..{100 * max(rel):+.1f})"
                                                                    if len(rel) > 1 else ""))
        lines.append(f"| {variant} | {len(seeds)} | " + " | ".join(cells) + " | "
                     + (" / ".join(change) if variant != "raw" else "") + " |")
    return lines


if __name__ == "__main__":
    print("\n".join(table(load())))
