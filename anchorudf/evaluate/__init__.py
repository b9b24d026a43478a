"""Evaluation: point-cloud and point-to-surface metrics (numpy/scipy only, no torch)."""

from anchorudf.evaluate.metrics import (
    chamfer_l1,
    fscore,
    ndc_to_paper,
    nn_dist,
    p2s_exact,
    paper_chamfer,
    paper_p2s,
    point_metrics,
)

__all__ = ["chamfer_l1", "fscore", "ndc_to_paper", "nn_dist", "p2s_exact", "paper_chamfer",
           "paper_p2s", "point_metrics"]
