"""The README's table of held-out cuts: dense points of each model on the held-out dresses,
vests and capes and on the held-out hoodies (this folder's README says how they were made).

    python reports/experiments/new_cuts/summarise.py [FOLDER]

FOLDER (default: this folder's ``2026-12-07``) holds ``newcuts_<model>.json`` and
``hoodies_<model>.json`` (evaluate metrics) for each model; each model's own test-set
score is read from ``test_<model>.json`` when present. Prints a markdown table: paper
Chamfer / P2S x1e-3 over all held-out views, per cut, and the ratio of the new cuts' mean
to the model's own test set.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CUTS = ("dress", "vest", "cape", "hoodie")


def _points(path: Path) -> dict:
    return json.loads(path.read_text())["anchorudf_points"]


def row(folder: Path, model: str) -> dict:
    """Scores of ``model``: per cut (Chamfer, P2S), all views, and its own test set."""
    new, hood = _points(folder / f"newcuts_{model}.json"), _points(folder / f"hoodies_{model}.json")
    per = {c: (v["paper_chamfer_1e3"], v["paper_p2s_1e3"]) for c, v in new["per_category"].items()}
    per["hoodie"] = (hood["paper_chamfer_1e3"], hood["paper_p2s_1e3"])
    n_new, n_hood = new["views"], hood["views"]
    both = tuple((new[k] * n_new + hood[k] * n_hood) / (n_new + n_hood)
                 for k in ("paper_chamfer_1e3", "paper_p2s_1e3"))
    test = folder / f"test_{model}.json"
    own = _points(test)["paper_chamfer_1e3"] if test.exists() else None
    return {"per": per, "all": both, "views": n_new + n_hood, "own": own}


def table(folder: Path) -> list[str]:
    models = sorted({p.stem.split("_", 1)[1] for p in folder.glob("newcuts_*.json")})
    out = ["| model | all held-out cuts | " + " | ".join(CUTS) + " | all / own test set |",
           "|---" * (len(CUTS) + 3) + "|"]
    for m in models:
        r = row(folder, m)
        cells = [f"{r['per'][c][0]:.3f} / {r['per'][c][1]:.3f}" for c in CUTS]
        ratio = f"{r['all'][0] / r['own']:.2f}x" if r["own"] else "n/a"
        out.append(f"| {m} | {r['all'][0]:.3f} / {r['all'][1]:.3f} | " + " | ".join(cells) + f" | {ratio} |")
    return out


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    print("\n".join(table(Path(sys.argv[1]) if len(sys.argv) > 1 else here / "2026-12-07")))
