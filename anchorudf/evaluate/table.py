"""The metrics table: per-view rows aggregated per method (and category), and its text form."""

from __future__ import annotations

import numpy as np

#: side_iou: silhouette IoU seen from 90 degrees to the side (depth profile); grad_cos: mean
#: cosine of the field's gradient and the true direction near the surface (the learned
#: field only; n/a for the point baselines).
METRICS = ["paper_chamfer_1e3", "paper_p2s_1e3", "chamfer_l1", "p2s", "fscore", "side_iou", "grad_cos"]


def aggregate(table) -> dict:
    """Mean over yaws per garment, then over garments (the paper's order); per category too."""
    out: dict = {}

    def mean(x) -> float | None:  # JSON has no NaN: a method that failed everywhere is null
        v = x.mean()  # pandas skips NaN (views where nothing was reconstructed)
        return None if np.isnan(v) else float(v)

    for method, t in table.groupby("method", sort=True):
        per_garment = t.groupby(["id", "category"])[METRICS].mean().reset_index()
        entry = {k: mean(per_garment[k]) for k in METRICS}
        entry["views"] = int(len(t))
        entry["empty_views"] = int((t["points"] == 0).sum())
        if "boundary_loops" in t and t["boundary_loops"].notna().any():
            ok = t.dropna(subset=["boundary_loops"])
            entry["boundary_loops_match"] = float((ok["boundary_loops"] == ok["gt_boundary_loops"]).mean())
        entry["per_category"] = {c: {k: mean(g[k]) for k in METRICS}
                                 for c, g in per_garment.groupby("category", sort=True)}
        out[method] = entry
    return out


def format_table(summary: dict) -> str:
    """A plain-text table of the aggregated metrics, one row per method."""
    head = f"{'method':<20}" + "".join(f"{k:>19}" for k in METRICS)
    lines = [head, "-" * len(head)]
    for method, e in summary.items():
        lines.append(f"{method:<20}" + "".join(f"{e[k]:>19.4f}" if e[k] is not None else f"{'n/a':>19}"
                                               for k in METRICS))
    return "\n".join(lines)
