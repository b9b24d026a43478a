import os

# Offscreen rendering on CPU: must be set before anything imports OpenGL.
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

import numpy as np
import pytest
import trimesh

from anchorudf import stages
from anchorudf.config import load_params


def _open_tube(radius, height, seed):
    m = trimesh.creation.cylinder(radius, height, sections=24)
    keep = np.abs(m.face_normals[:, 2]) < 0.5  # drop the caps: an open "skirt"
    m = trimesh.Trimesh(m.vertices, m.faces[keep], process=True)
    m = m.subdivide().subdivide()
    rng = np.random.default_rng(seed)
    m.vertices += rng.normal(0, 0.003, m.vertices.shape)
    m.visual.vertex_colors = np.tile(rng.integers(0, 255, 4, dtype=np.uint8), (len(m.vertices), 1))
    # Z up in the source: tests the up-axis rotation as well
    return m


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A tiny generic dataset (4 open tubes + 1 broken file), fully preprocessed."""
    root = tmp_path_factory.mktemp("pipeline")
    src = root / "src"
    for i in range(4):
        cat = "skirt" if i % 2 else "trousers"
        (src / cat).mkdir(parents=True, exist_ok=True)
        _open_tube(0.2 + 0.03 * i, 0.6 + 0.05 * i, i).export(src / cat / f"g{i}.ply")
    (src / "skirt" / "broken.obj").write_text("this is not a mesh\n")
    p = load_params(None, ["garments.source=generic", f"garments.input={src}", "garments.test_fraction=0.25",
                           "render.size=64", "render.yaw_step=90", "render.shards=[0, 1]",
                           "sample.points_per_garment=4000", "sample.shards=[0, 1]",
                           "anchors.count=16", "anchors.surface_samples=500", "evaluate.gt_points=2000",
                           "train.points=256", "garments.up_axis=+Z"])
    out = root / "data"
    summary = stages.preprocess(p, out)
    return p, out, summary


