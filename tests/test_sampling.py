"""Surface sampling, query points with exact targets, k-means anchors."""

import meshes
import numpy as np
import pytest

from anchorudf.config import SampleConfig
from anchorudf.geometry.anchors import kmeans_anchors
from anchorudf.geometry.closest import closest_points
from anchorudf.geometry.sampling import (UNIFORM_HALF_EXTENT, class_counts, query_points, split_counts,
                                         surface_samples)


def test_split_counts_largest_remainder():
    assert split_counts(10, [1, 1, 1]).tolist() == [4, 3, 3]
    assert split_counts(5000, [0.01, 0.49, 0.5]).tolist() == [50, 2450, 2500]
    assert split_counts(7, [0, 2, 5]).tolist() == [0, 2, 5]
    for total in range(0, 50):
        c = split_counts(total, [0.3, 0.3, 0.4])
        assert c.sum() == total and (np.abs(c - total * np.array([0.3, 0.3, 0.4])) < 1).all()
    with pytest.raises(ValueError):
        split_counts(5, [0, 0])
    with pytest.raises(ValueError):
        split_counts(5, [-1, 2])


def test_surface_samples_are_area_weighted_and_on_surface():
    # two triangles, the second with 3x the area of the first
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [5, 0, 0], [2, 2, 0]], dtype=float)
    f = np.array([[0, 1, 2], [3, 4, 5]])
    pts, fid = surface_samples(v, f, 40000, np.random.default_rng(0))
    share = np.mean(fid == 1)
    assert abs(share - 3.0 / 3.5) < 0.01   # areas 0.5 and 3.0
    udf, _ = closest_points(v, f, pts)
    assert udf.max() < 1e-6
    # uniform inside a triangle: mean equals the centroid
    assert np.allclose(pts[fid == 1].mean(0), v[3:].mean(0), atol=0.02)


def test_surface_samples_choice_pick_is_the_generator_choice_stream():
    # pick="choice" draws faces exactly as rng.choice(F, n, p=areas/sum) and then the same
    # barycentric map (the diversity report and the pictures were made with that stream).
    v, f = meshes.open_tube_arrays(sections=12, rings=4)
    v = v * np.array([1.0, 1.3, 0.7])
    pts, fid = surface_samples(v, f, 5000, np.random.default_rng(3), pick="choice")
    rng = np.random.default_rng(3)
    t = v[f]
    area = 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)
    ref_fid = rng.choice(len(f), size=5000, p=area / area.sum())
    r1, r2 = rng.random(5000), rng.random(5000)
    s = np.sqrt(r1)
    ref = (1 - s)[:, None] * t[ref_fid, 0] + (s * (1 - r2))[:, None] * t[ref_fid, 1] + (s * r2)[:, None] * t[ref_fid, 2]
    assert np.array_equal(fid, ref_fid) and np.array_equal(pts, ref)
    _, cdf_fid = surface_samples(v, f, 5000, np.random.default_rng(3))
    assert np.mean(cdf_fid == fid) > 0.99  # the default "cdf" pick: same draws, other rounding
    with pytest.raises(ValueError, match="pick"):
        surface_samples(v, f, 10, np.random.default_rng(0), pick="uniform")


def test_query_points_classes_and_targets():
    v, f = meshes.open_tube_arrays(sections=24, rings=6)
    cfg = SampleConfig(points_per_garment=4000, sigmas=[0.08, 0.02, 0.003], ratios=[0.01, 0.49, 0.5],
                       uniform_ratio=0.25)
    out = query_points(v, f, cfg, np.random.default_rng(0))
    counts = np.bincount(out["sigma_index"], minlength=4)
    assert counts.tolist() == [1000, 30, 1470, 1500] == class_counts(cfg).tolist()
    assert (np.diff(out["sigma_index"]) >= 0).all()          # sorted: classes contiguous
    assert out["points"].dtype == np.float64
    assert np.array_equal(out["points"], out["points"].astype(np.float32).astype(np.float64))
    uni = out["points"][out["sigma_index"] == 0]
    assert np.abs(uni).max() <= UNIFORM_HALF_EXTENT and np.abs(uni).max() > 0.5
    # the fine class sits close to the surface, the coarse one further away
    d = out["udf"]
    assert np.median(d[out["sigma_index"] == 3]) < 0.005 < np.median(d[out["sigma_index"] == 2]) < 0.04
    ref, q = closest_points(v, f, out["points"])
    assert np.array_equal(ref, d) and np.array_equal(q, out["closest"])
    assert np.abs(out["closest"] + d[:, None] * out["direction"] - out["points"]).max() < 1e-9


def test_query_points_deterministic_and_seed_sensitive():
    v, f = meshes.open_tube_arrays(sections=8, rings=3)
    cfg = SampleConfig(points_per_garment=500)
    a = query_points(v, f, cfg, np.random.default_rng(5))
    b = query_points(v, f, cfg, np.random.default_rng(5))
    c = query_points(v, f, cfg, np.random.default_rng(6))
    for k in a:
        assert a[k].tobytes() == b[k].tobytes()
    assert a["points"].tobytes() != c["points"].tobytes()


def test_kmeans_anchors_deterministic_bytes_and_sorted():
    rng = np.random.default_rng(0)
    v, f = meshes.open_tube_arrays(sections=24, rings=6)
    pts, _ = surface_samples(v, f, 3000, rng)
    for method in ("kmeans", "minibatch"):
        a = kmeans_anchors(pts, 40, seed=3, method=method)
        b = kmeans_anchors(pts, 40, seed=3, method=method)
        assert a.dtype == np.float32 and a.shape == (40, 3)
        assert a.tobytes() == b.tobytes()
        order = np.lexsort((a[:, 2], a[:, 1], a[:, 0]))
        assert (order == np.arange(40)).all()
        # centres lie near the surface they summarise
        assert closest_points(v, f, a.astype(np.float64))[0].max() < 0.1
    c = kmeans_anchors(pts, 40, seed=4)
    assert c.tobytes() != kmeans_anchors(pts, 40, seed=3).tobytes()


def test_kmeans_anchors_bad_input():
    with pytest.raises(ValueError, match="count"):
        kmeans_anchors(np.zeros((5, 3)), 10, 0)
    with pytest.raises(ValueError, match="method"):
        kmeans_anchors(np.random.default_rng(0).random((50, 3)), 5, 0, method="spectral")
