"""The README's learning curve of the default recipe: table and ``curve.png``.

Run: ``python reports/experiments/learning_curve/summarise.py``. Every run folder here holds
``run.json`` (steps, seed, training minutes and how they were measured), ``metrics.json``
(the evaluate stage's aggregate, dense points, ``-S evaluate.mesh=false -S
evaluate.baselines=false``), ``views.csv`` (its per-view rows) and ``train/*.tsv`` (the
training curve). Values: dense points, paper Chamfer / P2S x1e-3, default test set (18
garments x 3 yaws) and style-shifted set (12 x 3); where a budget has several training
seeds, mean +- sample std over them. The median over views is printed too: a few views
carry much of the mean.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_runs() -> dict[int, list[dict]]:
    """Runs grouped by total training steps (main + GDA), each with its run.json, the
    dense points' metrics and per-view Chamfer."""
    runs: dict[int, list[dict]] = defaultdict(list)
    for d in sorted(p for p in HERE.iterdir() if (p / "run.json").is_file()):
        run = json.loads((d / "run.json").read_text())
        m = json.loads((d / "metrics.json").read_text())
        views = defaultdict(list)
        with open(d / "views.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                if row["method"] == "anchorudf_points":
                    views[row["split"]].append(float(row["paper_chamfer_1e3"]))
        run.update(name=d.name, test=m["anchorudf_points"], shifted=m["shifted"]["anchorudf_points"],
                   median_test=statistics.median(views["test"]), median_shifted=statistics.median(views["shifted"]))
        runs[run["steps"] + run["gda_steps"]].append(run)
    return dict(sorted(runs.items()))


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"


def table(runs: dict[int, list[dict]]) -> list[str]:
    lines = ["| steps (main + GDA) | CPU minutes | seeds | test Chamfer | test P2S | test median Chamfer "
             "| shifted Chamfer | shifted P2S | shifted / test |",
             "|---|---|---|---|---|---|---|---|---|"]
    for total, group in runs.items():
        r0 = group[0]
        minutes = statistics.mean(r["train_minutes"] for r in group)
        col = lambda split, k: [r[split][k] for r in group]  # noqa: E731
        ratio = statistics.mean(col("shifted", "paper_chamfer_1e3")) / statistics.mean(col("test", "paper_chamfer_1e3"))
        lines.append(
            f"| {total} ({r0['steps']} + {r0['gda_steps']}) | {minutes:.1f} | {len(group)} "
            f"| {_cell(col('test', 'paper_chamfer_1e3'))} | {_cell(col('test', 'paper_p2s_1e3'))} "
            f"| {_cell([r['median_test'] for r in group])} "
            f"| {_cell(col('shifted', 'paper_chamfer_1e3'))} | {_cell(col('shifted', 'paper_p2s_1e3'))} "
            f"| {ratio:.2f}x |")
    return lines


def plot(runs: dict[int, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    # run.json "curve": false marks runs of another step cost (the same minutes buy other
    # steps): drawn as their own markers, not joined to the step-scaled curve.
    curve = {t: g for t, g in runs.items() if g[0].get("curve", True)}
    others = {t: g for t, g in runs.items() if not g[0].get("curve", True)}
    for split, key, style in (("test", "paper_chamfer_1e3", "o-"), ("test", "paper_p2s_1e3", "s--"),
                              ("shifted", "paper_chamfer_1e3", "o-"), ("shifted", "paper_p2s_1e3", "s--")):
        colour = "tab:blue" if split == "test" else "tab:orange"
        label = f"{'default test' if split == 'test' else 'style-shifted'}: {'Chamfer' if 'chamfer' in key else 'P2S'}"
        for groups, fmt, tag in ((curve, style, ""), (others, "D" if "chamfer" in key else "d", " (this version)")):
            if not groups:
                continue
            x = [statistics.mean(r["train_minutes"] for r in g) for g in groups.values()]
            ys = [[r[split][key] for r in g] for g in groups.values()]
            y = [statistics.mean(v) for v in ys]
            err = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in ys]
            ax.errorbar(x, y, yerr=err, fmt=fmt, color=colour, capsize=3, label=label + tag,
                        mfc="none" if tag else colour)
    ax.set_xscale("log")
    ax.set_xlabel("training, minutes of a 2-core CPU (log)")
    ax.set_ylabel("dense points, paper metric x1e-3")
    ax.set_title("AnchorUDF default recipe: quality vs compute")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    runs = load_runs()
    print("\n".join(table(runs)))
    plot(runs, HERE / "curve.png")
    print(f"wrote {HERE / 'curve.png'}")


if __name__ == "__main__":
    main()
