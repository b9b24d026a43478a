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
            entry.update(mesh_topology_summary(t.dropna(subset=["boundary_loops"])))
        entry["per_category"] = {c: {k: mean(g[k]) for k in METRICS}
                                 for c, g in per_garment.groupby("category", sort=True)}
        out[method] = entry
    return out


def mesh_topology_summary(t) -> dict:
    """Over the views with a mesh: share with the ground truth's number of boundary loops,
    the median loop count and |loops - gt|, share without non-manifold edges, mean
    non-manifold edges and vertices per view, median pieces, median boundary length ratio."""
    out = {"boundary_loops_match": float((t["boundary_loops"] == t["gt_boundary_loops"]).mean()),
           "boundary_loops_median": float(t["boundary_loops"].median()),
           "boundary_loops_abs_error_median": float((t["boundary_loops"] - t["gt_boundary_loops"]).abs().median())}
    if "nonmanifold_edges" in t:
        out["manifold_edges_share"] = float((t["nonmanifold_edges"] == 0).mean())
        out["nonmanifold_edges_mean"] = float(t["nonmanifold_edges"].mean())
        out["nonmanifold_vertices_mean"] = float(t["nonmanifold_vertices"].mean())
        out["pieces_median"] = float(t["pieces"].median())
        ratio = t["boundary_length_ratio"].median()
        out["boundary_length_ratio_median"] = None if np.isnan(ratio) else float(ratio)
    return out


#: Top-level keys of the evaluate summary that are not methods (see
#: anchorudf.evaluate.stage.summarise_splits).
SPLIT_KEYS = ("shifted", "shifted_ratio")


def format_table(summary: dict) -> str:
    """A plain-text table of the aggregated metrics, one row per method; when the summary
    has a style-shifted section, its table too and the headline ratio shifted / default of
    the dense points' paper Chamfer."""
    head = f"{'method':<20}" + "".join(f"{k:>19}" for k in METRICS)

    def rows(entries: dict) -> list[str]:
        return [f"{method:<20}" + "".join(f"{e[k]:>19.4f}" if e[k] is not None else f"{'n/a':>19}"
                                          for k in METRICS)
                for method, e in entries.items() if method not in SPLIT_KEYS]

    lines = [head, "-" * len(head)] + rows(summary)
    if "shifted" in summary:
        lines += ["", "style-shifted garments (split shifted)", head, "-" * len(head)] + rows(summary["shifted"])
        ratio = summary.get("shifted_ratio", {}).get("anchorudf_points", {}).get("paper_chamfer_1e3")
        text = f"{ratio:.2f}x" if ratio is not None else "n/a"
        lines.append(f"shifted / default paper Chamfer (anchorudf_points): {text}")
    return "\n".join(lines)
