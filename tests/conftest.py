import os

# Offscreen rendering on CPU: must be set before anything imports OpenGL.
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

import meshes
import pytest

from anchorudf import stages
from anchorudf.config import load_params


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A tiny generic dataset (4 open tubes + 1 broken file), fully preprocessed."""
    root = tmp_path_factory.mktemp("pipeline")
    src = root / "src"
    for i in range(4):
        cat = "skirt" if i % 2 else "trousers"
        (src / cat).mkdir(parents=True, exist_ok=True)
        # Z up in the source: tests the up-axis rotation as well
        meshes.open_tube(0.2 + 0.03 * i, 0.6 + 0.05 * i, sections=24, rings=2, up="z", subdivisions=2,
                         noise=0.003, seed=i, colour=True).export(src / cat / f"g{i}.ply")
    (src / "skirt" / "broken.obj").write_text("this is not a mesh\n")
    p = load_params(None, ["garments.source=generic", f"garments.input={src}", "garments.test_fraction=0.25",
                           "render.size=64", "render.yaw_step=90", "render.shards=[0, 1]",
                           "sample.points_per_garment=4000", "sample.shards=[0, 1]",
                           "anchors.count=16", "anchors.surface_samples=500", "evaluate.gt_points=2000",
                           "train.points=256", "garments.up_axis=+Z"])
    out = root / "data"
    summary = stages.preprocess(p, out)
    return p, out, summary


