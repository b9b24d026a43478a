"""Print the wide-cuts table: the default recipe on the default world (A) and on the default
world plus dresses, vests and capes (B), 3 training seeds each, scored on the default test
set, the style-shifted set and held-out hoodies (dense points, paper Chamfer / P2S x1e-3).

Run from the repository root: ``python reports/experiments/wide_cuts/summarise.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EXP = HERE.parent


def _points(path: Path, shifted: bool = False) -> tuple[float, float]:
    m = json.loads(path.read_text())
    m = m["shifted"] if shifted else m
    p = m["anchorudf_points"]
    return p["paper_chamfer_1e3"], p["paper_p2s_1e3"]


def _present(paths: list[Path], shifted: bool = False) -> list[tuple[float, float]]:
    """Chamfer / P2S of every metrics file of ``paths`` that exists (a run not made yet is left out)."""
    return [_points(p, shifted) for p in paths if p.exists()]


def runs() -> dict[str, dict[str, list[tuple[float, float]]]]:
    a_default = [EXP / "learning_curve" / f"steps3150_seed{k}" / "metrics.json" for k in range(3)]
    a_hoodie = [EXP / "new_cuts" / "metrics_hoodie_default.json"] + \
        [HERE / f"a_seed{k}" / "metrics_hoodie.json" for k in (1, 2)]
    b_default = [HERE / f"b_seed{k}" / "metrics_default.json" for k in range(3)]
    b_hoodie = [HERE / f"b_seed{k}" / "metrics_hoodie.json" for k in range(3)]
    return {"A: default world (6 cuts, 162 training garments)": {
                "test": _present(a_default), "shifted": _present(a_default, True), "hoodies": _present(a_hoodie)},
            "B: + dresses, vests, capes (9 cuts, 242 training garments)": {
                "test": _present(b_default), "shifted": _present(b_default, True), "hoodies": _present(b_hoodie)}}


def _cell(vals: list[tuple[float, float]]) -> str:
    if not vals:
        return "-"
    a = np.asarray(vals)
    sd = a.std(axis=0, ddof=1) if len(a) > 1 else np.zeros(2)
    return f"{a[:, 0].mean():.3f} +- {sd[0]:.3f} / {a[:, 1].mean():.3f} +- {sd[1]:.3f} (n={len(a)})"


def main() -> None:
    table = runs()
    print("| training world | default test set (54 views) | style-shifted set (36 views) | hoodies (21 views) |")
    print("|---|---|---|---|")
    for name, sets in table.items():
        print(f"| {name} | " + " | ".join(_cell(sets[k]) for k in ("test", "shifted", "hoodies")) + " |")
    a, b = table.values()
    for k in ("test", "shifted", "hoodies"):
        if a[k] and b[k]:
            ra = np.mean([x[0] for x in a[k]])
            rb = np.mean([x[0] for x in b[k]])
            print(f"{k}: B vs A Chamfer {100 * (rb / ra - 1):+.1f}%")


if __name__ == "__main__":
    main()
