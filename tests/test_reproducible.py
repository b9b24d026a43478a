"""Bit-stable garments: tiny float differences upstream (another machine's last bits) give
the same stored bytes; the default garment set is byte-identical run to run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from anchorudf.data.manifest import manifest_row, stable_float
from anchorudf.data.meshio import QUANT_BITS, quantize, save_garment
from anchorudf.data.normalize import normalize_mesh

ANNY_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "anny"


def _mesh(seed: int = 0, n: int = 2000, textured: bool = False) -> trimesh.Trimesh:
    rng = np.random.default_rng(seed)
    v = rng.uniform(-0.5, 0.5, (n, 3))
    v[: n // 4] *= 1e-3  # coordinates near 0: where float32 rounding is finest
    f = rng.integers(0, n, (2 * n, 3))
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    if textured:
        tex = Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
        visual = trimesh.visual.TextureVisuals(uv=rng.uniform(0, 1, (n, 2)), image=tex)
        return trimesh.Trimesh(v, f, visual=visual, process=False)
    colours = rng.integers(0, 255, (n, 4), dtype=np.uint8)
    return trimesh.Trimesh(v, f, vertex_colors=colours, process=False)


def _perturbed(mesh: trimesh.Trimesh, eps: float, seed: int = 1) -> trimesh.Trimesh:
    rng = np.random.default_rng(seed)
    out = mesh.copy()
    out.vertices = np.asarray(mesh.vertices) + eps * rng.choice([-1.0, 1.0], np.shape(mesh.vertices))
    if getattr(out.visual, "kind", None) == "texture":
        out.visual.uv = np.asarray(mesh.visual.uv) + eps * rng.choice([-1.0, 1.0], np.shape(mesh.visual.uv))
    return out


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_quantize_is_exact_idempotent_and_float32_safe():
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 10000)
    q = quantize(x)
    grid = 2.0**-QUANT_BITS
    assert np.abs(q - x).max() <= grid / 2
    assert np.array_equal(quantize(q), q)
    assert np.array_equal(q.astype(np.float32).astype(np.float64), q)  # the PLY stores float32
    assert not np.signbit(quantize(np.array([-1e-12]))).any()  # no -0.0


@pytest.mark.parametrize("textured", [False, True])
def test_perturbed_meshes_save_to_identical_bytes(tmp_path, textured):
    mesh = _mesh(textured=textured)
    a = save_garment(tmp_path / "a", "g", mesh)
    b = save_garment(tmp_path / "b", "g", _perturbed(mesh, 1e-12))
    assert a == b
    assert _tree_bytes(tmp_path / "a") == _tree_bytes(tmp_path / "b")
    # the caller's mesh is not changed by saving
    assert not np.array_equal(np.asarray(mesh.vertices), quantize(mesh.vertices))


def test_perturbed_sources_normalise_to_identical_garment_and_manifest(tmp_path):
    src = _mesh(seed=3)
    src.vertices = np.asarray(src.vertices) * 1.7 + [0.1, 1.2, -0.05]  # metres, off-centre
    rows = []
    for name, mesh in (("a", src), ("b", _perturbed(src, 1e-12))):
        g, scale, offset = normalize_mesh(mesh)
        rel = save_garment(tmp_path / name, "g", g)
        rows.append(manifest_row("g", "skirt", "train", "b0", "x", rel, g, scale, offset))
    assert rows[0] == rows[1]
    assert _tree_bytes(tmp_path / "a") == _tree_bytes(tmp_path / "b")


def test_stable_float():
    assert stable_float(0.1234567891234) == stable_float(0.1234567891234 * (1 + 1e-15)) == 0.123456789
    assert stable_float(3e-17, unit=1.5) == 0.0 and str(stable_float(-3e-17, unit=1.5)) == "0.0"
    assert stable_float(-2.5e-3, unit=1.5) == -0.0025


@pytest.fixture(scope="module")
def anny_cache() -> Path:
    pytest.importorskip("anny", reason="the anny body model package is not installed")
    built = any(ANNY_CACHE.glob("v*/build_compact_model_data_*.safetensors"))
    if not built and os.environ.get("ANCHORUDF_SKIP_ANNY") == "1":
        pytest.skip(f"anny cache absent at {ANNY_CACHE} and ANCHORUDF_SKIP_ANNY=1 (the build takes ~45 s)")
    return ANNY_CACHE


@pytest.mark.slow
def test_default_garments_are_byte_identical_across_runs_and_worker_counts(tmp_path, anny_cache):
    from anchorudf import stages
    from anchorudf.config import load_params

    for name, workers in (("a", 1), ("b", 2)):  # in this process, then in 2 worker processes
        p = load_params(None, ["garments.count=6", "garments.shifted_count=3", "garments.extra_train=2",
                               f"garments.anny_cache={anny_cache}", f"garments.workers={workers}"])
        stages.garments(p, tmp_path / name, report=tmp_path / f"{name}.json")
    first, second = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert len([k for k in first if k.startswith("meshes/")]) == 11  # 6 train/test + 3 style-shifted + 2 extra
    from anchorudf.data.manifest import read_manifest

    rows = read_manifest(tmp_path / "a")
    extra = rows[rows["id"].isin(["tshirt_0009", "longsleeve_0010"])]  # ids after the shifted ones
    assert len(extra) == 2 and set(extra["split"]) == {"train"}
    assert first == second
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    # every stored coordinate is on the grid
    from anchorudf.data.meshio import load_garment

    mesh = load_garment(tmp_path / "a", next(k for k in first if k.endswith(".ply")))
    assert np.array_equal(quantize(mesh.vertices), np.asarray(mesh.vertices, dtype=np.float64))
