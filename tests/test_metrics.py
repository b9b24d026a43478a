"""Metrics against hand-computable cases and a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from anchorudf.evaluate import (
    chamfer_l1,
    fscore,
    ndc_to_paper,
    nn_dist,
    p2s_exact,
    paper_chamfer,
    paper_p2s,
    point_metrics,
)


def _grid(n=40, spacing=0.01):
    """A flat (n*n, 3) grid in z = 0 with the given spacing."""
    u = np.arange(n) * spacing
    x, y = np.meshgrid(u, u)
    return np.c_[x.ravel(), y.ravel(), np.zeros(n * n)]


def _brute_nn(a, b):
    return np.sqrt(((a[:, None, :] - b[None]) ** 2).sum(-1)).min(1)


def test_identical_sets_give_zero():
    p = np.random.default_rng(0).uniform(size=(500, 3))
    assert paper_chamfer(p, p) == 0.0
    assert paper_p2s(p, p) == 0.0
    assert chamfer_l1(p, p) == 0.0
    assert fscore(p, p, 1e-6) == 1.0


def test_shift_normal_to_a_flat_grid():
    # A shift d normal to a grid with spacing > d: every nearest neighbour is the copy.
    gt = _grid()
    d = 0.003
    pred = gt + [0.0, 0.0, d]
    assert paper_chamfer(pred, gt) == pytest.approx(d ** 2, rel=1e-9)
    assert paper_p2s(pred, gt) == pytest.approx(d ** 2, rel=1e-9)
    assert chamfer_l1(pred, gt) == pytest.approx(d, rel=1e-9)
    assert fscore(pred, gt, 2 * d) == 1.0
    assert fscore(pred, gt, d / 2) == 0.0


def test_fscore_precision_recall():
    gt = _grid(10, 1.0)  # 100 points
    pred = np.r_[gt[:50], gt[:50] + [0.0, 0.0, 5.0]]  # half right, covering half of gt
    # precision 50/100, recall 50/100 -> F = 0.5
    assert fscore(pred, gt, 0.1) == pytest.approx(0.5)
    # precision 1, recall 0.5 -> F = 2/3
    assert fscore(gt[:50], gt, 0.1) == pytest.approx(2 / 3)


def test_matches_brute_force_and_direction():
    rng = np.random.default_rng(1)
    pred, gt = rng.normal(size=(300, 3)), rng.normal(size=(200, 3)) + 0.3
    d_pg, d_gp = _brute_nn(pred, gt), _brute_nn(gt, pred)
    np.testing.assert_allclose(nn_dist(pred, gt), d_pg, rtol=1e-12)
    assert paper_chamfer(pred, gt) == pytest.approx(0.5 * ((d_pg ** 2).mean() + (d_gp ** 2).mean()))
    assert paper_p2s(pred, gt) == pytest.approx((d_pg ** 2).mean())
    assert paper_p2s(gt, pred) == pytest.approx((d_gp ** 2).mean())
    assert chamfer_l1(pred, gt) == pytest.approx(0.5 * (d_pg.mean() + d_gp.mean()))
    m = point_metrics(pred, gt, 0.5)
    assert m["paper_chamfer"] == pytest.approx(paper_chamfer(pred, gt))
    assert m["fscore"] == pytest.approx(fscore(pred, gt, 0.5))
    assert m["chamfer_l1"] == pytest.approx(chamfer_l1(pred, gt))


def test_ndc_to_paper():
    np.testing.assert_allclose(ndc_to_paper(np.array([[-1.0, 0.0, 1.0]])), [[0.0, 0.5, 1.0]])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="src"):
        paper_chamfer(np.zeros((0, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        chamfer_l1(np.full((2, 3), np.nan), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="threshold"):
        fscore(np.zeros((2, 3)), np.zeros((3, 3)), 0.0)


def test_p2s_exact_to_triangles():
    # Unit square in z = 0 as two triangles. Points above it: distance = height; beyond an
    # edge: distance to the edge (the KD-tree on vertices would be wrong here).
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=float)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    pts = np.array([[0.5, 0.5, 0.2], [0.3, 0.6, -0.1], [1.3, 0.5, 0.4]])
    expected = np.array([0.2, 0.1, 0.5])
    assert p2s_exact(pts, v, f) == pytest.approx(expected.mean(), abs=1e-6)


def test_score_one_query_in_ndc_matches_both_frames():
    """``score`` queries neighbours once, in NDC, and scales the distances into the
    paper's [0, 1] frame and the garment frame; that must equal querying in each frame."""
    from anchorudf.config import load_params
    from anchorudf.evaluate.stage import GroundTruth, score
    from anchorudf.geometry.camera import project, unproject

    rng = np.random.default_rng(3)
    # A similarity calib (scaled rotation with the y flip, a shift) like the renders'.
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    calib = np.eye(4)
    calib[:3, :3] = 1.7 * np.diag([1.0, -1.0, 1.0]) @ q
    calib[:3, 3] = [0.05, -0.1, 0.02]
    v = np.array([[0, 0, 0], [0.4, 0, 0], [0.4, 0.4, 0.05], [0, 0.4, 0]], dtype=float) - 0.2
    f = np.array([[0, 1, 2], [0, 2, 3]])
    surface = rng.uniform(-0.2, 0.2, size=(3000, 3)) * [1, 1, 0.1]
    gt = GroundTruth("g", "tshirt", v, f, surface, 1)
    pred_ndc = project(calib, surface[:2000] + rng.normal(scale=0.01, size=(2000, 3)))
    p = load_params(None, ["evaluate.metric_points=100000"])
    got = score(pred_ndc, gt, calib, p, seed=0)
    gt_ndc = project(calib, surface)
    paper = point_metrics(ndc_to_paper(pred_ndc), ndc_to_paper(gt_ndc), p.evaluate.fscore_threshold)
    readable = point_metrics(unproject(calib, pred_ndc), surface, p.evaluate.fscore_threshold)
    assert got["paper_chamfer_1e3"] == pytest.approx(1e3 * paper["paper_chamfer"], rel=1e-9)
    assert got["paper_p2s_1e3"] == pytest.approx(1e3 * paper["paper_p2s"], rel=1e-9)
    assert got["chamfer_l1"] == pytest.approx(readable["chamfer_l1"], rel=1e-9)
    assert got["fscore"] == pytest.approx(readable["fscore"], rel=1e-9)
    assert 0.0 < got["fscore"] < 1.0  # the threshold splits the distances: the check has teeth
