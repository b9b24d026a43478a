"""End-to-end preprocessing of a tiny generic dataset, and the training items built from it."""

import numpy as np

from anchorudf.geometry.camera import calib_scale, ndc_to_pixel, project, unproject


def test_preprocess_outputs_and_rejects(tiny_data):
    p, out, summary = tiny_data
    assert summary["garments"]["garments"] == 4 and summary["garments"]["rejected"] == 1
    rejects = (out / "garments" / "rejects.csv").read_text()
    assert "broken.obj" in rejects
    assert sum(s["rendered"] for s in summary["render"]) == 4
    assert len(list((out / "render").glob("shard-*/*/views.json"))) == 4
    assert (out / "cache" / "anchors" / "index.json").is_file()


def test_training_items_line_up_with_pixels(tiny_data):
    from scipy.spatial import cKDTree

    from anchorudf.data.cache import load_samples
    from anchorudf.train.data import build_dataset

    p, out, _ = tiny_data
    ds = build_dataset(p, "train", garments_dir=out / "garments", render_dir=out / "render",
                       cache_dir=out / "cache")
    assert len(ds) == 3 * 6  # 3 train garments x yaws {0, 40, 90, 180, 270, 320} (test yaws too)
    cached = {}
    for i in range(len(ds)):
        item = ds[(i, 1234 + i)]
        calib = item["calib"].numpy().astype(np.float64)
        k = calib_scale(calib)
        assert item["image"].shape == (3, 64, 64) and item["points"].shape == (256, 3)
        v = ds.views[i]
        assert np.isclose(k, calib_scale(v.calib), rtol=0.06)
        # the points are cached samples of this garment mapped through the item's calib, and
        # distances are NDC units: garment udf * scale
        if v.garment_id not in cached:
            cached[v.garment_id] = load_samples(out / "cache", v.garment_id)
        s = cached[v.garment_id]
        dist, row = cKDTree(s["points"]).query(unproject(calib, item["points"].numpy()))
        assert dist.max() < 1e-5
        np.testing.assert_allclose(item["udf"].numpy(), s["udf"][row] * k, rtol=1e-5, atol=1e-7)
        # near-surface points (udf < half a pixel) project onto the (augmented) mask, up to
        # the pixel rounding of the mask's edge: a flipped axis or a wrong scale would miss.
        from scipy.ndimage import distance_transform_edt

        pts = item["points"].numpy()
        near = item["udf"].numpy() < 0.5 * 2 / 64
        uv = np.round(ndc_to_pixel(pts[near], 64, 64)).astype(int).clip(0, 63)
        mask = item["mask"][0].numpy() > 0.5
        assert distance_transform_edt(~mask)[uv[:, 1], uv[:, 0]].max() <= 1.5
        # anchors and directions are consistent with the calib
        assert np.allclose(np.linalg.norm(item["direction"].numpy(), axis=1), 1, atol=1e-3)
        d = s["direction"][row].astype(np.float64) @ calib[:3, :3].T
        np.testing.assert_allclose(item["direction"].numpy(), d / np.linalg.norm(d, axis=1, keepdims=True),
                                   atol=1e-5)
        np.testing.assert_allclose(item["anchors"].numpy(), project(calib, s["anchors"]), atol=1e-5)
        assert np.abs(item["anchors"].numpy()).max() < 1.0


def test_targets_transform_exactly(tiny_data):
    from anchorudf.data.cache import load_samples
    from anchorudf.train.data import augmentation_matrix, transform_targets

    p, out, _ = tiny_data
    gid = sorted(x.name for x in (out / "render").glob("shard-*/*") if x.is_dir())[0]
    s = load_samples(out / "cache", gid)
    calib = augmentation_matrix(np.random.default_rng(3), True, 0.1, 0.1) @ np.diag([1.5, 1.5, 1.5, 1.0])
    t = transform_targets(calib, s["points"][:50].astype(float), s["udf"][:50].astype(float),
                          s["direction"][:50].astype(float), s["anchors"].astype(float))
    closest_ndc = project(calib, s["closest"][:50].astype(float))
    # q + udf * direction == p holds in NDC too
    assert np.allclose(closest_ndc + t["udf"][:, None] * t["direction"], t["points"], atol=1e-4)
    assert np.allclose(unproject(calib, t["points"]), s["points"][:50], atol=1e-5)


def _brute_udf(v, f, pts):
    """Slow, obvious point-to-triangle distance: plane projection if inside, else edges."""
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    best = np.full(len(pts), np.inf)
    for i, p in enumerate(pts):
        # exact: project onto each triangle plane, clamp via edges
        ab, ac, ap = b - a, c - a, p - a
        d00, d01, d11 = (ab * ab).sum(1), (ab * ac).sum(1), (ac * ac).sum(1)
        d20, d21 = (ap * ab).sum(1), (ap * ac).sum(1)
        den = d00 * d11 - d01 * d01
        vv = (d11 * d20 - d01 * d21) / den
        ww = (d00 * d21 - d01 * d20) / den
        inside = (vv >= 0) & (ww >= 0) & (vv + ww <= 1)
        q = a + vv[:, None] * ab + ww[:, None] * ac
        dist = np.where(inside, np.linalg.norm(p - q, axis=1), np.inf)
        for s0, s1 in ((a, b), (b, c), (c, a)):
            e = s1 - s0
            t = np.clip(((p - s0) * e).sum(1) / (e * e).sum(1), 0, 1)
            dist = np.minimum(dist, np.linalg.norm(p - (s0 + t[:, None] * e), axis=1))
        best[i] = dist.min()
    return best


def test_user_folder_samples_are_exact(tiny_data):
    """load_samples on a garment of a user folder: distances equal a brute-force reference."""
    from anchorudf.data.cache import load_samples
    from anchorudf.data.manifest import read_manifest
    from anchorudf.data.meshio import load_garment, mesh_arrays

    p, out, _ = tiny_data
    row = read_manifest(out / "garments").iloc[0]
    v, f = mesh_arrays(load_garment(out / "garments", row["mesh"]))
    s = load_samples(out / "cache", row["id"])
    idx = np.random.default_rng(0).choice(len(s["points"]), 60, replace=False)
    ref = _brute_udf(v, f, s["points"][idx].astype(np.float64))
    assert np.abs(ref - s["udf"][idx]).max() < 1e-6
    assert np.allclose(s["closest"][idx] + s["udf"][idx, None] * s["direction"][idx], s["points"][idx], atol=1e-3)


def test_rotation_augmentation_is_an_exact_similarity(tiny_data):
    """train.rotate_jitter: the matrix is mirror/scale, then a roll about the view axis, then
    a shift; depth is untouched, targets stay exact (q + udf * direction == p in the rotated
    NDC), the warped mask moves with the matrix, and 0 draws what the old matrix drew."""
    from anchorudf.data.cache import load_samples
    from anchorudf.data.images import image_tensors, load_rgb_mask
    from anchorudf.render import load_views
    from anchorudf.train.data import augmentation_matrix, transform_targets, warp_image

    a0 = augmentation_matrix(np.random.default_rng(5), True, 0.1, 0.1)
    rng = np.random.default_rng(5)
    s = 1.0 + rng.uniform(-0.1, 0.1)
    tx, ty = rng.uniform(-0.1, 0.1, 2)
    mirror = -1.0 if rng.random() < 0.5 else 1.0
    assert np.allclose(a0, [[mirror * s, 0, 0, tx], [0, s, 0, ty], [0, 0, s, 0], [0, 0, 0, 1]])
    assert np.array_equal(augmentation_matrix(np.random.default_rng(5), True, 0.1, 0.1, 0.0), a0)

    a = augmentation_matrix(np.random.default_rng(5), True, 0.1, 0.1, 30.0)
    r = a[:2, :2] / s
    assert np.allclose(r @ r.T, np.eye(2)) and np.isclose(abs(np.linalg.det(r)), 1.0)
    assert np.allclose(a[2], [0, 0, s, 0]) and np.allclose(a[:2, 2], 0) and np.allclose(a[:2, 3], [tx, ty])
    angle = np.degrees(np.arctan2(a[1, 0], a[1, 1]))
    assert 0 < abs(angle) <= 30.0

    p, out, _ = tiny_data
    gid = sorted(x.name for x in (out / "render").glob("shard-*/*") if x.is_dir())[0]
    sm = load_samples(out / "cache", gid)
    view = next(iter(load_views(out / "render", gid)))
    calib = a @ np.asarray(view.calib)
    t = transform_targets(calib, sm["points"][:50].astype(float), sm["udf"][:50].astype(float),
                          sm["direction"][:50].astype(float), sm["anchors"].astype(float))
    assert np.allclose(project(calib, sm["closest"][:50].astype(float)) + t["udf"][:, None] * t["direction"],
                       t["points"], atol=1e-4)

    # Surface points land on the warped mask's pixels; the opposite roll would miss them.
    _, mask = image_tensors(*load_rgb_mask(view.image, view.mask))
    q = sm["closest"].astype(float)

    def hits(aug, point_aug):
        """Share of the surface points, projected through ``point_aug``, on the mask warped by ``aug``."""
        warped = warp_image(mask, aug, mode="nearest")[0].numpy()
        h, w = warped.shape
        ndc = project(point_aug @ np.asarray(view.calib), q)
        col = np.clip(np.floor((ndc[:, 0] + 1) * 0.5 * w), 0, w - 1).astype(int)
        row = np.clip(np.floor((1 - ndc[:, 1]) * 0.5 * h), 0, h - 1).astype(int)
        return float(np.mean(warped[row, col] > 0.5))

    roll = a[:2, :2] @ np.diag([1 / (mirror * s), 1 / s])
    wrong = a.copy()
    wrong[:2, :2] = roll.T @ np.diag([mirror * s, s])  # the roll the other way round
    assert hits(np.eye(4), np.eye(4)) > 0.97 and hits(a, a) > 0.97
    assert hits(a, wrong) < hits(a, a) - 0.1
