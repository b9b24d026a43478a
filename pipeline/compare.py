"""Side-by-side table of several evaluations' dense-point scores (README tables).

Each argument is ``LABEL=PATH`` with PATH an evaluate ``metrics.json`` (``anchorudf
evaluate --metrics``, or ``reports/metrics.json``); ``--paper LABEL=CHAMFER/P2S`` adds the
paper's figures for that row. Prints a markdown table: paper Chamfer and P2S (x1e-3) on
the default test set and on the style-shifted set, side IoU and grad cos (test set), the
number of views, and the paper's numbers where given.

    python pipeline/compare.py AnchorUDF=runs/anchor/metrics.json \\
        PIFu-UDF=runs/pifu/metrics.json --paper AnchorUDF=0.621/0.839 --paper PIFu-UDF=1.411/2.440
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

METHOD = "anchorudf_points"


def _pair(text: str, what: str) -> tuple[str, str]:
    label, sep, value = text.partition("=")
    if not sep or not label or not value:
        raise SystemExit(f"error: {what} must be LABEL=VALUE, got {text!r}")
    return label, value


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def row(label: str, path: Path, paper: str | None) -> list[str]:
    """Cells of one table row from an evaluate metrics.json."""
    try:
        m = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"error: {path}: {e}") from None
    test = m.get(METHOD)
    if not isinstance(test, dict):
        raise SystemExit(f"error: {path}: no {METHOD!r} scores (not an evaluate metrics.json?)")
    shifted = (m.get("shifted") or {}).get(METHOD) or {}
    cells = [label, _fmt(test.get("paper_chamfer_1e3")), _fmt(test.get("paper_p2s_1e3")),
             _fmt(shifted.get("paper_chamfer_1e3")), _fmt(shifted.get("paper_p2s_1e3")),
             _fmt(test.get("side_iou")), _fmt(test.get("grad_cos")),
             str(int(test.get("views", 0))) + (f" + {int(shifted['views'])}" if "views" in shifted else "")]
    return cells + ([paper.replace("/", " / ")] if paper is not None else [])


def table(runs: list[tuple[str, Path]], paper: dict[str, str]) -> str:
    head = ["run", "Chamfer", "P2S", "shifted Chamfer", "shifted P2S", "side IoU", "grad cos", "views"]
    if paper:
        head.append("paper Chamfer / P2S")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, path in runs:
        cells = row(label, path, paper.get(label, "") if paper else None)
        lines.append("| " + " | ".join(c if c else "-" for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="LABEL=metrics.json")
    ap.add_argument("--paper", action="append", default=[], help="LABEL=CHAMFER/P2S from the paper")
    args = ap.parse_args(argv)
    runs = [(label, Path(p)) for label, p in (_pair(r, "a run") for r in args.runs)]
    paper = dict(_pair(p, "--paper") for p in args.paper)
    unknown = sorted(set(paper) - {label for label, _ in runs})
    if unknown:
        raise SystemExit(f"error: --paper for unknown rows {unknown}")
    sys.stdout.write(table(runs, paper) + "\n")


if __name__ == "__main__":
    main()
