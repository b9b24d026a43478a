"""Print the README's two H200 transfer tables from the metrics files in this folder.

Run: ``python reports/experiments/transfer_h200/summarise.py``. Runs: ``A<k>`` the GPU recipe
on today's default set, ``B<k>`` the same with ``train.rotate_jitter=15
train.scale_jitter=0.15``, ``O<k>`` the GPU recipe on the previous 60-garment set;
``k`` is ``train.seed``. Values: dense points, paper Chamfer / P2S x1e-3, mean +- sample
std over the seeds.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent


def points(path: Path, split: str | None = None) -> tuple[float, float]:
    m = json.loads(path.read_text())
    e = (m[split] if split else m)["anchorudf_points"]
    return e["paper_chamfer_1e3"], e["paper_p2s_1e3"]


def cell(values: list[tuple[float, float]]) -> str:
    ch, p2s = zip(*values)
    return (f"{statistics.mean(ch):.3f} +- {statistics.stdev(ch):.3f} / "
            f"{statistics.mean(p2s):.3f} +- {statistics.stdev(p2s):.3f}")


def main() -> None:
    print("| runs | default test set | style-shifted set | previous test set |")
    print("|---|---|---|---|")
    for group in ("O", "A", "B"):
        runs = sorted(HERE.glob(f"{group}[0-9]"))
        test = [points(r / "metrics_default_sets.json") for r in runs]
        shifted = [points(r / "metrics_default_sets.json", "shifted") for r in runs]
        previous = [points(r / "metrics_previous_test_set.json") for r in runs
                    if (r / "metrics_previous_test_set.json").is_file()]
        print(f"| {group}0-{group}{len(runs) - 1} | {cell(test)} | {cell(shifted)} | "
              f"{cell(previous) if len(previous) > 1 else '-'} |")


if __name__ == "__main__":
    main()
