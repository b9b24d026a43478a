"""The default garment generator (anny bodies) and its diversity report.

Kernels (clipping, subdivision, push-out, Chamfer search) are checked against slow
obvious references on tiny inputs without anny. The generator tests need the anny model
build at <repo>/.cache/anny: they build it once (about 45-60 s) when it is missing, or skip
when it is missing and ANCHORUDF_SKIP_ANNY=1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from anchorudf.config import CATEGORIES, GENERATOR_CATEGORIES
from anchorudf.data.anny import body as ab
from anchorudf.data.anny.garments import EXPECTED_LOOPS
from anchorudf.data.anny.plan import TOPS, plan_garments
from anchorudf.data.diversity import nearest_train_distances, normalised_samples
from anchorudf.geometry import surface as sf
from anchorudf.geometry.distance import paper_chamfer
from anchorudf.geometry.topology import boundary_edges, boundary_loops, face_components

ANNY_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "anny"


# ------------------------------------------------------------------ planning (no anny)

def test_plan_split_by_body_round_robin_and_coverage():
    specs = plan_garments(60, list(CATEGORIES), seed=0, test_fraction=0.2)
    assert [s.category for s in specs] == [CATEGORIES[i % 6] for i in range(60)]
    assert [s.garment_id for s in specs[:2]] == ["tshirt_0000", "longsleeve_0001"]
    train = {s.body_id for s in specs if s.split == "train"}
    test = {s.body_id for s in specs if s.split == "test"}
    assert train and test and not train & test
    assert abs(len(test) / len(train | test) - 0.2) < 0.05
    for c in CATEGORIES:
        assert {s.split for s in specs if s.category == c} == {"train", "test"}, c
    for body in train | test:  # one top and one bottom per body, same body parameters
        worn = [s for s in specs if s.body_id == body]
        assert sorted(s.category in TOPS for s in worn) == [False, True]
        assert len({(s.phenotype, s.pose, s.pose_strength, s.pose_jitter) for s in worn}) == 1
    assert all(0.62 <= s.phenotype[1] <= 1.0 for s in specs)  # adults only
    assert plan_garments(60, list(CATEGORIES), 0, 0.2) == specs
    assert plan_garments(60, list(CATEGORIES), 1, 0.2) != specs
    assert len({s.seed for s in specs}) == 60


def test_plan_styles_appearances_and_poses_cover_their_ranges():
    from anchorudf.data.anny.body import POSES
    from anchorudf.data.anny.plan import APPEARANCES, FIT_RANGE, GREY_RGB, STYLES

    specs = plan_garments(180, list(CATEGORIES), seed=0, test_fraction=0.1)
    assert {s.split for s in specs} == {"train", "test"}
    for c in CATEGORIES:  # every cut variant of every category is drawn
        assert {s.style for s in specs if s.category == c} == set(STYLES[c]), c
    assert {s.pose for s in specs} == set(POSES)
    counts = {a: sum(s.appearance == a for s in specs) for a in APPEARANCES}
    assert min(counts.values()) >= 40, counts  # grey, plain and pattern about equally often
    for s in specs:
        assert len(s.pose_jitter) == 14 and FIT_RANGE[0] <= s.fit <= FIT_RANGE[1] and 0 <= s.length <= 1
        if s.appearance == "grey":
            assert s.pattern == "solid" and s.color_a == s.color_b and max(s.color_a) - min(s.color_a) <= 12
            assert all(0.75 * g <= c <= 1.15 * g for c, g in zip(s.color_a, GREY_RGB))
        elif s.appearance == "plain":
            assert s.pattern == "solid" and s.color_a == s.color_b
        else:
            assert s.pattern != "solid"


def test_plan_shifted_garments_are_outside_the_training_ranges():
    from anchorudf.data.anny.body import POSES, SHIFTED_POSES
    from anchorudf.data.anny.plan import FIT_RANGE, GREY_RGB, SHIFTED_FITS, SHIFTED_LENGTHS

    base = plan_garments(60, list(CATEGORIES), seed=0, test_fraction=0.2)
    specs = plan_garments(60, list(CATEGORIES), seed=0, test_fraction=0.2, shifted_count=12)
    assert specs[:60] == base  # the shifted garments change nothing of the others
    shifted = specs[60:]
    assert [s.garment_id for s in shifted[:2]] == ["tshirt_0060", "longsleeve_0061"]
    assert [s.category for s in shifted] == [CATEGORIES[i % 6] for i in range(12)]
    assert {s.split for s in shifted} == {"shifted"} and len({s.garment_id for s in specs}) == 72
    assert not {s.body_id for s in shifted} & {s.body_id for s in base}  # bodies of their own
    assert {s.pose for s in shifted} == set(SHIFTED_POSES) and not set(SHIFTED_POSES) & set(POSES)
    for s in shifted:
        assert s.appearance == "grey" and s.color_a == GREY_RGB and s.pattern == "solid"
        assert not 0 <= s.length <= 1 and any(lo <= s.length <= hi for lo, hi in SHIFTED_LENGTHS[s.category])
        assert not FIT_RANGE[0] <= s.fit <= FIT_RANGE[1] and any(lo <= s.fit <= hi for lo, hi in SHIFTED_FITS)
    assert plan_garments(60, list(CATEGORIES), 0, 0.2, 12) == specs
    with pytest.raises(ValueError, match="shifted_count"):
        plan_garments(6, list(CATEGORIES), 0, 0.2, -1)


def test_plan_extra_training_garments_leave_the_test_and_shifted_sets_alone():
    from anchorudf.data.anny.body import POSES
    from anchorudf.data.anny.plan import FIT_RANGE

    base = plan_garments(60, list(CATEGORIES), seed=0, test_fraction=0.2, shifted_count=12)
    specs = plan_garments(60, list(CATEGORIES), seed=0, test_fraction=0.2, shifted_count=12, extra_train=30)
    assert specs[:72] == base  # every default and shifted garment as it was
    extra = specs[72:]
    assert len(extra) == 30 and extra[0].garment_id == "tshirt_0072" and extra[-1].garment_id == "skirt_0101"
    assert [s.category for s in extra] == [CATEGORIES[i % 6] for i in range(30)]
    assert {s.split for s in extra} == {"train"} and len({s.garment_id for s in specs}) == 102
    assert not {s.body_id for s in extra} & {s.body_id for s in base}  # bodies of their own
    assert len({s.body_id for s in extra}) == 15  # a top and a bottom each
    assert {s.pose for s in extra} <= set(POSES)  # the training ranges, not the shifted ones
    assert all(FIT_RANGE[0] <= s.fit <= FIT_RANGE[1] and 0 <= s.length <= 1 for s in extra)
    assert len({(s.phenotype, s.fit, s.length) for s in extra + base}) == 102  # new draws, not copies
    assert plan_garments(60, list(CATEGORIES), 0, 0.2, 0, 30)[:60] == base[:60]
    assert plan_garments(60, list(CATEGORIES), 0, 0.2, 12, 30) == specs
    with pytest.raises(ValueError, match="extra_train"):
        plan_garments(6, list(CATEGORIES), 0, 0.2, 0, -1)


def test_plan_extra_categories_widen_training_only():
    from anchorudf.config import GENERATOR_CATEGORIES

    base = plan_garments(60, list(CATEGORIES), seed=0, test_fraction=0.2, shifted_count=12)
    specs = plan_garments(60, list(CATEGORIES), 0, 0.2, 12, 20, extra_categories=list(GENERATOR_CATEGORIES))
    assert specs[:72] == base  # the default and shifted garments as they were
    extra = specs[72:]
    assert [s.category for s in extra] == [GENERATOR_CATEGORIES[i % 10] for i in range(20)]
    assert [s.garment_id for s in extra[6:8]] == ["dress_0078", "vest_0079"]
    assert {s.split for s in extra} == {"train"}
    assert not {s.body_id for s in extra} & {s.body_id for s in base}
    # empty (the default) means `categories`, as before the key existed
    assert plan_garments(60, list(CATEGORIES), 0, 0.2, 12, 20, extra_categories=[]) == \
        plan_garments(60, list(CATEGORIES), 0, 0.2, 12, 20)
    with pytest.raises(ValueError, match="extra_categories"):
        plan_garments(6, list(CATEGORIES), 0, 0.2, 0, 2, extra_categories=["kilt"])


def test_extra_categories_param_is_checked():
    from anchorudf.config import ConfigError, load_params

    assert load_params(None, ["garments.extra_categories=[dress,hoodie]"]).garments.extra_categories == ["dress", "hoodie"]
    with pytest.raises(ConfigError, match="garments.extra_categories: unknown category 'kilt'"):
        load_params(None, ["garments.extra_categories=[kilt]"])


def test_plan_edge_cases():
    assert {s.split for s in plan_garments(12, list(CATEGORIES), 0, 0.0)} == {"train"}
    assert [s.split for s in plan_garments(1, ["skirt"], 0, 0.2)] == ["train"]
    few = plan_garments(4, ["tshirt", "trousers"], 0, 0.5)
    assert {s.split for s in few} == {"train", "test"}
    with pytest.raises(ValueError, match="unknown"):
        plan_garments(5, ["tshirt", "hat"], 0, 0.2)
    with pytest.raises(ValueError, match="count"):
        plan_garments(0, list(CATEGORIES), 0, 0.2)


# ------------------------------------------------------------ surface kernels (no anny)

def _grid(n: int = 6):
    """Unit square [0,1]^2 in z=0 as an n x n quad grid (counter-clockwise, normal +Z)."""
    xs = np.linspace(0, 1, n + 1)
    v = np.stack(np.meshgrid(xs, xs, indexing="xy"), -1).reshape(-1, 2)
    v = np.concatenate([v, np.zeros((len(v), 1))], 1)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    a = i * (n + 1) + j
    return v, np.stack([a, a + 1, a + n + 2, a + n + 1], -1).reshape(-1, 4)


def _area_normal(v, f):
    cr = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return 0.5 * np.linalg.norm(cr, axis=1).sum(), cr


def test_subdivide_and_clip_against_exact_geometry():
    v, q = _grid(5)
    q2, v2 = sf.subdivide_quads(q, v)
    tri = sf.quads_to_triangles(q2)
    area, cr = _area_normal(v2, tri)
    assert len(q2) == 4 * len(q) and np.isclose(area, 1.0) and (cr[:, 2] > 0).all()
    # A linear field is cut exactly: keep x + 0.5 y <= 0.8 -> a known trapezoid area.
    phi = v2[:, 0] + 0.5 * v2[:, 1] - 0.8
    f3, v3 = sf.clip_mesh(tri, v2, phi)
    area3, cr3 = _area_normal(v3, f3)
    assert np.isclose(area3, 0.8 - 0.25) and (cr3[:, 2] > 0).all()
    assert (v3[:, 0] + 0.5 * v3[:, 1] <= 0.8 + 1e-12).all()
    assert len(np.unique(face_components(f3))) == 1 and boundary_loops(f3) == 1
    # A disc-shaped hole in the middle makes a second boundary loop.
    f4, v4 = sf.clip_mesh(tri, v2, 0.2 - np.hypot(v2[:, 0] - 0.5, v2[:, 1] - 0.5))
    assert boundary_loops(f4) == 2
    hole = 1.0 - _area_normal(v4, f4)[0]
    assert abs(hole - np.pi * 0.2 ** 2) < 0.02  # polygonal approximation of the disc


def test_push_out_leaves_no_point_inside_a_sphere():
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(300, 3))
    pts *= (rng.uniform(0.2, 1.5, 300) / np.linalg.norm(pts, axis=1))[:, None]
    out, left = sf.push_out(pts, sphere, margin=0.01)
    assert left == 0 and not sphere.contains(out).any()
    was_out = np.linalg.norm(pts, axis=1) > 1.0
    assert np.array_equal(out[was_out], pts[was_out])  # outside points are untouched
    assert (np.linalg.norm(out[~was_out], axis=1) < 1.0 + 0.05).all()  # moved just outside


def test_prune_anny_cache_keeps_only_compact_data(tmp_path):
    keep = tmp_path / "v14" / "build_compact_model_data_0123abcd.safetensors"
    drop = [tmp_path / "v14" / "load_data_99.safetensors", tmp_path / "v14" / "build_model_data_5.safetensors"]
    other = tmp_path / "warp" / "kernel.bin"
    for p in [keep, other, *drop]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    removed = ab.prune_anny_cache(tmp_path)
    assert sorted(removed) == sorted(drop) and keep.exists() and other.exists()


class _Scale:
    """A stand-in for anny's world transformation: any map applied to the offsets."""

    def apply(self, x):
        return 0.1 * x


def _annys_reader():
    """anny's own load_blend_shape, also after load_anny has swapped in the fast one."""
    from anny.models import full_model

    return getattr(full_model.load_blend_shape, "_anchorudf_original", full_model.load_blend_shape)


def _blend_shape_pair(path, dtype=None):
    """(anny's own load_blend_shape, load_blend_shape_fast) of one target file."""
    import torch

    original = _annys_reader()
    dtype = dtype or torch.float32
    return (original(str(path), 40, _Scale(), dtype),
            ab.load_blend_shape_fast(str(path), 40, _Scale(), dtype, original))


@pytest.mark.parametrize("text", [
    b"0 0.1 -0.2 0.3\n7 1e-3 2.5 -0.0001\n39 0.333333333333333314829616256247 1 2\n",  # rounding to float32
    b"3 1 2 3",  # no final newline
    b"",  # an empty target (anny ships some): all zeros
])
def test_fast_blend_shape_reader_gives_annys_tensors(tmp_path, text):
    import gzip

    import torch

    path = tmp_path / "t.target.gz"
    path.write_bytes(gzip.compress(text))
    for dtype in (torch.float32, torch.float64):
        theirs, ours = _blend_shape_pair(path, dtype)
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)


@pytest.mark.parametrize("text", [
    b"0 1 2\n",  # three numbers
    b"0 1 2 3\n\n1 1 2 3\n",  # a blank line
    b"40 1 2 3\n",  # vertex id out of range
    b"1.5 1 2 3\n",  # not an integer id
])
def test_fast_blend_shape_reader_leaves_odd_files_to_anny(tmp_path, text):
    """What anny's reader rejects is rejected the same way (its own error)."""
    import gzip

    path = tmp_path / "t.target.gz"
    path.write_bytes(gzip.compress(text))
    original = _annys_reader()
    with pytest.raises(Exception) as theirs:
        original(str(path), 40, _Scale(), None)
    calls = []

    def spy(*args):
        calls.append(args)
        return original(*args)

    with pytest.raises(type(theirs.value)):
        ab.load_blend_shape_fast(str(path), 40, _Scale(), None, spy)
    assert calls  # anny's reader was asked


def test_fast_blend_shape_reader_keeps_the_last_line_of_a_twice_named_vertex(tmp_path):
    import gzip

    import torch

    path = tmp_path / "t.target.gz"
    path.write_bytes(gzip.compress(b"2 1 1 1\n2 5 6 7\n"))
    theirs, ours = _blend_shape_pair(path)
    assert torch.equal(ours, theirs) and float(ours[2, 0]) == pytest.approx(0.5)


def test_fast_blend_shape_reader_on_annys_own_targets():
    """A sample of the targets the build reads: the same tensors as anny's reader."""
    import torch
    from anny.models import full_model

    root = Path(full_model.get_anny_root_dir()) / "data" / "mpfb2" / "targets"
    files = sorted(root.rglob("*.target.gz"))
    if not files:
        pytest.skip("anny ships no targets here")
    original = _annys_reader()
    for path in files[:: max(1, len(files) // 25)]:
        n = 30000
        assert torch.equal(ab.load_blend_shape_fast(str(path), n, _Scale(), torch.float32, original),
                           original(str(path), n, _Scale(), torch.float32)), path


# ----------------------------------------------------------------- diversity (no anny)

@dataclass(frozen=True)
class _Spec:
    garment_id: str
    category: str
    split: str


def test_nearest_train_matches_brute_force_and_is_scale_free():
    import trimesh

    rng = np.random.default_rng(1)
    meshes, specs = {}, []
    for i in range(9):
        m = trimesh.creation.icosphere(subdivisions=2)
        m.vertices = m.vertices * rng.uniform(0.4, 1.6, 3) + rng.normal(0, 0.03, m.vertices.shape)
        meshes[f"g{i}"] = m
        specs.append(_Spec(f"g{i}", "a" if i % 2 else "b", "test" if i < 3 else "train"))
    df = nearest_train_distances(meshes, specs, n_points=400, seed=3)
    assert list(df["id"]) == ["g0", "g1", "g2"]
    pts = {s.garment_id: normalised_samples(meshes[s.garment_id], 400, 3 * 1000003 + i) for i, s in enumerate(specs)}
    for _, row in df.iterrows():
        # Slow reference: dense pairwise distances.
        ref = {}
        for s in specs[3:]:
            d2 = ((pts[row.id][:, None] - pts[s.garment_id][None]) ** 2).sum(-1)
            ref[s.garment_id] = 0.5 * (d2.min(1).mean() + d2.min(0).mean())
        best = min(ref, key=ref.get)
        assert row.nearest_train_id == best and np.isclose(row.chamfer, ref[best], rtol=1e-9)
        assert np.isclose(paper_chamfer(pts[row.id], pts[best]), ref[best], rtol=1e-9)
    scaled = {k: m.copy().apply_scale(3.0) for k, m in meshes.items()}
    df2 = nearest_train_distances(scaled, specs, n_points=400, seed=3)
    assert np.allclose(df2["chamfer"], df["chamfer"], rtol=1e-6)


# ---------------------------------------------------------------- generator (needs anny)

@pytest.fixture(scope="module")
def anny_cache() -> Path:
    pytest.importorskip("anny", reason="the anny body model package is not installed")
    built = any(ANNY_CACHE.glob("v*/build_compact_model_data_*.safetensors"))
    if not built and os.environ.get("ANCHORUDF_SKIP_ANNY") == "1":
        pytest.skip(f"anny cache absent at {ANNY_CACHE} and ANCHORUDF_SKIP_ANNY=1 (the build takes ~45 s)")
    ab.load_anny(ANNY_CACHE)  # builds once when absent
    return ANNY_CACHE


@pytest.fixture(scope="module")
def garments(anny_cache):
    from anchorudf.data.anny.garments import garment_body, generate_garment

    specs = plan_garments(12, list(CATEGORIES), seed=7, test_fraction=0.2)[6:]  # one per category
    extra = [c for c in GENERATOR_CATEGORIES if c not in CATEGORIES]  # opt-in cuts: dress, vest, cape, hoodie
    specs += plan_garments(2 * len(extra), extra, seed=7, test_fraction=0.2)[len(extra):]
    return {s.category: (s, generate_garment(s, anny_cache), garment_body(s, anny_cache)) for s in specs}


def test_cache_holds_only_the_compact_model(anny_cache):
    files = sorted(p.name for p in anny_cache.glob("v*/*") if p.is_file())
    assert files and all(f.startswith("build_compact_model_data_") for f in files)


def test_generator_is_deterministic(anny_cache, garments):
    from anchorudf.data.anny.garments import generate_garment

    spec, mesh, _ = garments["longcoat"]
    again = generate_garment(spec, anny_cache)
    assert np.asarray(mesh.vertices).tobytes() == np.asarray(again.vertices).tobytes()
    assert np.asarray(mesh.faces).tobytes() == np.asarray(again.faces).tobytes()
    assert mesh.visual.vertex_colors.tobytes() == again.visual.vertex_colors.tobytes()


@pytest.mark.parametrize("category", GENERATOR_CATEGORIES)
def test_garment_is_a_valid_open_surface(garments, category):
    spec, mesh, body = garments[category]
    faces = np.asarray(mesh.faces)
    assert len(np.unique(face_components(faces))) == 1, "one connected piece"
    assert len(boundary_edges(faces)) > 0 and not mesh.is_watertight, "open surface"
    assert boundary_loops(faces) == EXPECTED_LOOPS[category]
    assert mesh.is_winding_consistent
    assert not body.contains(mesh.vertices).any(), "a garment vertex lies inside the body"
    colours = mesh.visual.vertex_colors
    assert colours.dtype == np.uint8 and colours.shape == (len(mesh.vertices), 4)
    # Metres, +Y up: a garment spans 0.2-2 m and sits within the body's height.
    ext = mesh.bounds[1] - mesh.bounds[0]
    assert 0.2 < ext.max() < 2.0
    over = 0.06 if category == "hoodie" else 0.0  # a hood rises over the crown by its ease
    assert body.bounds[0, 1] - 0.01 <= mesh.bounds[0, 1] and mesh.bounds[1, 1] <= body.bounds[1, 1] + over
    # Outward winding: closed with fans over its boundary loops, it has a positive volume.
    assert _capped_signed_volume(np.asarray(mesh.vertices), faces) > 0


# Cut variants, shifted poses and out-of-range lengths/fits: (category, changes of the spec).
VARIANTS = {
    "tank_top": ("tshirt", dict(style="tank", sleeve=0.5, fit=0.02)),
    "wide_trousers": ("trousers", dict(style="wide", flare=1.0, pose="bent_knee", pose_strength=1.3)),
    "slim_cropped_trousers": ("trousers", dict(style="slim", flare=0.0, fit=0.003, length=0.0, pose="stride")),
    "wide_shorts": ("shorts", dict(style="wide", flare=1.0, length=1.0, pose="sit_hips", pose_strength=1.3)),
    "a_line_coat": ("longcoat", dict(style="a_line", flare=1.0, length=1.0, pose="arms_forward")),
    "pencil_skirt": ("skirt", dict(style="pencil", flare=0.0, length=0.5, pose="walk", fold_amp=0.004, fit=0.005)),
    "straight_skirt": ("skirt", dict(style="straight", flare=0.3, length=0.5, pose="walk", fit=0.05)),
    "pleated_mini_skirt": ("skirt", dict(style="pleated", fold_count=24, fold_amp=0.02, length=0.0)),
    "lunge_capri": ("trousers", dict(pose="lunge", length=-0.5, fit=0.09, appearance="grey")),
    "knee_up_maxi_skirt": ("skirt", dict(pose="knee_up", length=1.1, fit=0.0012, appearance="grey")),
    "t_pose_cropped_longsleeve": ("longsleeve", dict(pose="t_pose", length=-0.4, fit=0.09)),
    "lunge_ankle_coat": ("longcoat", dict(pose="lunge", length=1.3, fit=0.0012, appearance="grey")),
    "knee_up_long_shorts": ("shorts", dict(pose="knee_up", length=1.3, fit=0.09)),
}


@pytest.fixture(scope="module")
def variants(anny_cache, garments):
    import dataclasses

    from anchorudf.data.anny.garments import garment_body, generate_garment
    from anchorudf.data.anny.plan import GREY_RGB

    out = {}
    for name, (category, change) in VARIANTS.items():
        change = dict(change)
        if change.get("appearance") == "grey":
            change.update(pattern="solid", color_a=GREY_RGB, color_b=GREY_RGB)
        spec = dataclasses.replace(garments[category][0], garment_id=name, **change)
        out[name] = (spec, generate_garment(spec, anny_cache), garment_body(spec, anny_cache))
    return out


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_is_a_valid_open_surface(variants, name):
    from anchorudf.data.anny.plan import GREY_RGB

    spec, mesh, body = variants[name]
    faces = np.asarray(mesh.faces)
    assert len(np.unique(face_components(faces))) == 1, "one connected piece"
    assert boundary_loops(faces) == EXPECTED_LOOPS[spec.category] and not mesh.is_watertight
    assert mesh.is_winding_consistent and _capped_signed_volume(np.asarray(mesh.vertices), faces) > 0
    assert not body.contains(mesh.vertices).any(), "a garment vertex lies inside the body"
    assert 0.1 < np.ptp(mesh.vertices, axis=0).max() < 2.0
    if spec.appearance == "grey":  # untextured: one grey everywhere (the renderer's fallback grey, scaled)
        assert (mesh.visual.vertex_colors[:, :3] == spec.color_a).all()
        assert np.allclose(np.asarray(spec.color_a) / np.asarray(GREY_RGB), spec.color_a[0] / GREY_RGB[0], atol=0.01)


def test_variants_change_the_shape(variants, garments):
    """Each cut variant is measurably its own shape: a pencil skirt (as planned: tight, no
    flare) hugs the legs more than a straight one, an A-line coat widens towards the hem,
    wide trousers take more cloth than slim ones, cropped ones are shorter."""
    def width_at(mesh, t):  # x extent of the slice at height fraction t from the bottom
        v = np.asarray(mesh.vertices)
        lo, hi = v[:, 1].min(), v[:, 1].max()
        band = v[np.abs(v[:, 1] - (lo + t * (hi - lo))) < 0.02 * (hi - lo)]
        return np.ptp(band[:, 0])

    pencil, straight = variants["pencil_skirt"][1], variants["straight_skirt"][1]
    assert width_at(pencil, 0.05) < width_at(straight, 0.05) and pencil.area < straight.area
    coat = variants["a_line_coat"][1]
    assert width_at(coat, 0.02) > 1.3 * width_at(coat, 0.55)
    wide, slim = variants["wide_trousers"][1], variants["slim_cropped_trousers"][1]
    sh = lambda m: np.ptp(np.asarray(m.vertices)[:, 1])  # noqa: E731
    assert sh(slim) < sh(garments["trousers"][1])  # cropped: shorter than the default-length pair
    tank, tee = variants["tank_top"][1], garments["tshirt"][1]
    assert np.ptp(np.asarray(tank.vertices)[:, 0]) < np.ptp(np.asarray(tee.vertices)[:, 0]) + 0.05
    assert wide.area > slim.area


def test_dress_vest_cape_and_hoodie_are_their_own_cuts(garments):
    """A dress is a bodice with a skirt: it reaches below the crotch like a coat, with a hem
    loop wider than its waist. A vest is open down the front: its longest boundary loop
    runs from the neckline down to the hem along the front edges (a t-shirt's neckline
    stays above its chest). A cape is one sheet from a neck hole out over the shoulders
    and arms: its hem is far wider than its neck hole and than the body's trunk. A hoodie
    covers the head: it rises over the crown, covers the back of the head, and its highest
    loop is the face opening, upright in front of the face (not a neckline around the neck)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    def loops(mesh):  # vertex sets of the boundary loops
        be = boundary_edges(np.asarray(mesh.faces))
        n = len(mesh.vertices)
        _, lab = connected_components(coo_matrix((np.ones(len(be)), (be[:, 0], be[:, 1])), shape=(n, n)),
                                      directed=False)
        ids = np.unique(be)
        return [ids[lab[ids] == k] for k in np.unique(lab[ids])]

    dress, dress_body = garments["dress"][1], garments["dress"][2]
    tee = garments["tshirt"][1]
    v = np.asarray(dress.vertices)
    assert np.ptp(v[:, 1]) > 1.3 * np.ptp(np.asarray(tee.vertices)[:, 1])  # longer than a t-shirt
    assert v[:, 1].min() < dress_body.bounds[0, 1] + 0.55 * np.ptp(dress_body.bounds[:, 1])  # below the hips
    hem = min(loops(dress), key=lambda ids: v[ids, 1].mean())
    assert np.ptp(v[hem, 0]) > 0.25  # a skirt's hem, not a pair of legs
    for name, opens in (("vest", True), ("tshirt", False)):
        mesh = garments[name][1]
        w = np.asarray(mesh.vertices)
        longest = max(loops(mesh), key=lambda ids: np.ptp(w[ids, 1]))
        span = np.ptp(w[longest, 1]) / np.ptp(w[:, 1])
        assert (span > 0.9) == opens, (name, span)
    cape, cape_body = garments["cape"][1], garments["cape"][2]
    c = np.asarray(cape.vertices)
    neck, hem = sorted(loops(cape), key=lambda ids: -c[ids, 1].mean())
    assert np.ptp(c[hem, 0]) > 2.5 * np.ptp(c[neck, 0]) and np.ptp(c[neck, 0]) < 0.3
    assert c[neck, 1].mean() > cape_body.bounds[1, 1] - 0.3  # the neck hole sits at the neck
    hoodie, hoodie_body = garments["hoodie"][1], garments["hoodie"][2]
    h, top = np.asarray(hoodie.vertices), hoodie_body.bounds[1, 1]
    assert h[:, 1].max() > top  # over the crown
    face = max(loops(hoodie), key=lambda ids: h[ids, 1].mean())
    assert h[face, 1].mean() > top - 0.2  # at the head's height
    assert np.ptp(h[face, 1]) > 0.12 and np.ptp(h[face, 2]) < 0.6 * np.ptp(h[face, 1])  # upright, facing front
    assert h[face, 2].mean() > hoodie_body.vertices[hoodie_body.vertices[:, 1] > top - 0.2, 2].mean()  # front (+Z)
    head = h[h[:, 1] > top - 0.12]  # the back of the head (-Z) is covered
    body_head = np.asarray(hoodie_body.vertices)[np.asarray(hoodie_body.vertices)[:, 1] > top - 0.12]
    assert head[:, 2].min() < body_head[:, 2].min()


def _capped_signed_volume(v: np.ndarray, f: np.ndarray) -> float:
    """Signed volume of the mesh closed by a fan from each boundary loop's centroid."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    half = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    _, inv, cnt = np.unique(np.sort(half, axis=1), axis=0, return_inverse=True, return_counts=True)
    border = half[cnt[inv.ravel()] == 1]
    _, label = connected_components(coo_matrix((np.ones(len(border)), (border[:, 0], border[:, 1])),
                                               shape=(len(v), len(v))), directed=False)
    _, loop = np.unique(label[border[:, 0]], return_inverse=True)
    centre = np.stack([v[border[loop == k, 0]].mean(axis=0) for k in range(loop.max() + 1)])
    caps = np.concatenate([v[border[:, 1]][:, None], v[border[:, 0]][:, None], centre[loop][:, None]], axis=1)
    tris = np.concatenate([v[f], caps])
    return float(np.einsum("ij,ij->i", tris[:, 0], np.cross(tris[:, 1], tris[:, 2])).sum() / 6.0)


def test_output_frame_is_y_up_front_z(anny_cache, garments):
    import dataclasses

    from anchorudf.data.anny.garments import garment_body

    spec = dataclasses.replace(garments["tshirt"][0], pose="a_pose", pose_jitter=(0.0,) * 6)
    v = np.asarray(garment_body(spec, anny_cache).vertices)
    assert np.ptp(v[:, 1]) > 1.3 and np.ptp(v[:, 1]) > 2 * np.ptp(v[:, 2])  # standing along +Y
    low = v[:, 1].min()
    feet, shins = v[v[:, 1] < low + 0.04], v[(v[:, 1] > low + 0.10) & (v[:, 1] < low + 0.16)]
    ankle = shins[:, 2].mean()
    assert feet[:, 2].max() - ankle > 2 * (ankle - feet[:, 2].min())  # toes point to +Z
    head = v[v[:, 1] > v[:, 1].max() - 0.25]
    assert head[:, 1].max() > v[:, 1].max() - 1e-9 and head[:, 0].mean() ** 2 < 1e-3  # head on top, centred


@pytest.mark.parametrize("category", ["tshirt", "skirt"])
def test_calibration_on_generated_garments(garments, category):
    """Render stage calib on garments nobody designed for the render tests: the rasterised
    projection of the normalised garment's triangles matches the rendered mask."""
    from test_render import rasterise

    from anchorudf.config import RenderConfig
    from anchorudf.data.normalize import normalize_mesh
    from anchorudf.render.views import render_views

    _, mesh, _ = garments[category]
    mesh, _, _ = normalize_mesh(mesh)
    cfg = RenderConfig(size=96, yaw_step=0.0, yaws=[0.0], test_yaws=[0.0], backend="osmesa", shards=[0])
    for view in render_views(mesh, [0.0, 40.0, 135.0, 320.0], cfg, seed=0):
        ref = rasterise(view.calib, np.asarray(mesh.vertices), np.asarray(mesh.faces), 96)
        iou = (ref & view.mask).sum() / (ref | view.mask).sum()
        assert iou >= 0.98, f"{category} yaw {view.yaw}: IoU {iou:.4f}"
