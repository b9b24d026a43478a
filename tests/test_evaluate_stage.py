"""The evaluate stage and `anchorudf reconstruct` on a tiny preprocessed dataset."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from anchorudf import stages
from anchorudf.cli import app
from anchorudf.config import load_params

TINY = ["model.stacks=1", "model.depth=1", "model.channels=8", "model.decoder=[16]", "model.grid=8",
        "model.pos_channels=4", "train.steps=2", "train.gda_steps=1", "train.batch_size=2",
        "train.points=64", "evaluate.seed_points=500", "evaluate.target_points=300",
        "evaluate.max_rounds=2", "evaluate.mesh_resolution=16", "evaluate.metric_points=500",
        "evaluate.workers=1"]  # in process: the tests' monkeypatches apply


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    p0, data, _ = tiny_data
    overrides = [f"{k}={v}" for k, v in []]
    p = load_params(None, _same_preprocessing(p0) + TINY + overrides)
    run = tmp_path_factory.mktemp("run")
    stages.train(p, data, run, live_dir=run / "live")
    return p, data, run


def _same_preprocessing(p0):
    d = p0.to_dict()
    keep = []
    for section in ("garments", "render", "sample", "anchors"):
        for k, v in d[section].items():
            keep.append(f"{section}.{k}={json.dumps(v)}")
    keep.append(f"evaluate.gt_points={d['evaluate']['gt_points']}")
    return keep


def test_train_stage_writes_model_and_curves(trained):
    p, data, run = trained
    assert (run / "model" / "model.safetensors").is_file()
    metrics = json.loads((run / "live" / "metrics.json").read_text())
    assert metrics["step"] == 3


def test_evaluate_with_a_perfect_reconstruction_scores_zero(trained, tmp_path, monkeypatch):
    """Frames check: feeding the ground truth in the view's NDC must give ~0 error."""
    import anchorudf.evaluate.stage as stage_mod
    from anchorudf.data.cache import load_samples
    from anchorudf.geometry.camera import project
    from anchorudf.reconstruct.image import Reconstruction

    p, data, run = trained
    current = {}
    real_load_views = __import__("anchorudf.render", fromlist=["load_views"]).load_views

    def fake_reconstruct(model, image, cfg, delta, device="cpu", mesh=None):
        gid, calib = current["gid"], current["calib"]
        s = load_samples(data / "cache", gid)["surface_points"]
        pts = project(calib, s).astype(np.float32)
        return Reconstruction(pts, pts[:16], np.zeros((0, 3)), np.zeros((0, 3), np.int64))

    def spying_load_views(out_dir, gid):  # the stage loads the test view right before reconstructing
        views = real_load_views(out_dir, gid)
        current["gid"] = gid
        current["calib"] = next(v.calib for v in views if abs(v.yaw - 40.0) < 1e-6)
        return views

    # Evaluate one yaw so the spy knows which calib is in use.
    p1 = load_params(None, _same_preprocessing(p) + TINY + ["render.test_yaws=[40.0]",
                                                             "evaluate.baselines=false",
                                                             "evaluate.metric_points=2000"])
    monkeypatch.setattr(stage_mod, "reconstruct_image", fake_reconstruct)
    monkeypatch.setattr(stage_mod, "load_views", spying_load_views)
    summary = stages.evaluate(p1, data, run / "model", tmp_path / "eval", tmp_path / "recon",
                              tmp_path / "metrics.json")
    m = summary["anchorudf_points"]
    assert m["p2s"] < 1e-5                      # points exactly on the surface
    # the same 2000 samples on both sides: only the subsampling seed differs (here: none)
    assert m["paper_chamfer_1e3"] < 1e-6
    assert m["chamfer_l1"] < 1e-6 and m["fscore"] == 1.0


def test_evaluate_stage_outputs(trained, tmp_path):
    p, data, run = trained
    summary = stages.evaluate(p, data, run / "model", tmp_path / "eval", tmp_path / "recon",
                              tmp_path / "metrics.json")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) >= {"anchorudf_points", "predicted_anchors", "silhouette_retrieval",
                            "oracle_retrieval"}
    assert summary == metrics
    table = (tmp_path / "eval" / "views.csv").read_text().splitlines()
    assert len(table) > 1 and table[0].startswith("id,category,yaw,method")
    assert (tmp_path / "eval" / "index.html").is_file()
    pics = list((tmp_path / "eval" / "pictures").glob("*.png"))
    assert len(pics) == 1 and Image.open(pics[0]).size[0] > 0
    for method in ("oracle_retrieval", "silhouette_retrieval", "predicted_anchors"):
        assert metrics[method]["paper_chamfer_1e3"] > 0 and metrics[method]["empty_views"] == 0
    assert list((tmp_path / "recon").glob("*/yaw_*/points.ply"))


def test_reconstruct_cli_on_a_rendered_view_and_an_rgba_image(trained, tmp_path):
    from anchorudf.render import load_views

    p, data, run = trained
    gid = sorted(x.name for x in (data / "render").glob("shard-*/*") if x.is_dir())[0]
    view = load_views(data / "render", gid)[0]
    args = ["--checkpoint", str(run / "model"), "-S", "evaluate.seed_points=500",
            "-S", "evaluate.target_points=300", "-S", "evaluate.max_rounds=2",
            "-S", "evaluate.mesh_resolution=16"]
    r = CliRunner().invoke(app, ["reconstruct", str(view.image), "--mask", str(view.mask),
                                 "--out", str(tmp_path / "a")] + args)
    assert r.exit_code == 0, r.output
    for name in ("points.ply", "anchors.ply", "preview.png"):
        assert (tmp_path / "a" / name).is_file()
    # an RGBA image made outside the pipeline, any size
    rgba = np.zeros((90, 70, 4), np.uint8)
    rgba[20:80, 20:50] = (30, 120, 200, 255)
    Image.fromarray(rgba).save(tmp_path / "x.png")
    r = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "x.png"), "--out", str(tmp_path / "b")] + args)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "b" / "preview.png").is_file()
    # not an image: a clear error and exit code 1
    (tmp_path / "bad.png").write_text("nope")
    r = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "bad.png"), "--out", str(tmp_path / "c")] + args)
    assert r.exit_code == 1 and "not a readable image" in r.output


def test_summarise_splits_and_table_headline():
    """Test rows stay at the top level; shifted rows get their own section and ratios."""
    import pandas as pd

    from anchorudf.evaluate.stage import summarise_splits
    from anchorudf.evaluate.table import METRICS, format_table

    rows = []
    for gid, split, value in [("a", "test", 1.0), ("b", "test", 3.0), ("c", "shifted", 6.0)]:
        for yaw in (0.0, 40.0):
            rows.append({"id": gid, "category": "skirt", "yaw": yaw, "method": "anchorudf_points",
                         **{k: value for k in METRICS}, "points": 10, "split": split})
    rows.append({"id": "a", "category": "skirt", "yaw": 0.0, "method": "oracle_retrieval",
                 **{k: 1.0 for k in METRICS}, "points": 10, "split": "test"})
    summary = summarise_splits(pd.DataFrame(rows))
    assert summary["anchorudf_points"]["paper_chamfer_1e3"] == 2.0 and summary["anchorudf_points"]["views"] == 4
    assert summary["shifted"]["anchorudf_points"]["paper_chamfer_1e3"] == 6.0
    assert set(summary["shifted"]) == {"anchorudf_points"}
    assert summary["shifted_ratio"] == {"anchorudf_points": {k: 3.0 for k in METRICS}}
    text = format_table(summary)
    assert "shifted / default paper Chamfer (anchorudf_points): 3.00x" in text
    assert text.count("oracle_retrieval") == 1 and text.count("anchorudf_points") == 3
    # without shifted rows: exactly today's summary and table
    only_test = summarise_splits(pd.DataFrame([r for r in rows if r["split"] == "test"]))
    assert set(only_test) == {"anchorudf_points", "oracle_retrieval"} and "shifted" not in format_table(only_test)


def _with_a_shifted_garment(monkeypatch):
    """The stage reads a manifest in which the first train garment is style-shifted: two
    evaluated garments (the main process hands spawned workers their rows)."""
    import anchorudf.evaluate.stage as stage_mod

    real_read = stage_mod.read_manifest

    def with_a_shifted_garment(garments_dir):
        df = real_read(garments_dir)
        df.loc[df.index[df["split"] == "train"][0], "split"] = "shifted"
        return df

    monkeypatch.setattr(stage_mod, "read_manifest", with_a_shifted_garment)


def test_evaluate_gives_the_same_bytes_in_one_and_in_two_processes(trained, tmp_path, monkeypatch):
    """evaluate.workers: garments go to spawned processes, each running torch on one thread
    (as the in-process run does), so the table, metrics, pictures and reconstructions are
    byte-identical whatever the worker count. Two garments (a train garment becomes a
    style-shifted one in the main process, which hands the workers their rows), so two
    processes really run."""
    p, data, run = trained
    _with_a_shifted_garment(monkeypatch)
    outs = {}
    for workers in (1, 2):
        p1 = load_params(None, _same_preprocessing(p) + TINY + [f"evaluate.workers={workers}",
                                                                 "evaluate.baselines=false",
                                                                 "render.test_yaws=[0.0, 40.0]"])
        d = tmp_path / f"w{workers}"
        stages.evaluate(p1, data, run / "model", d / "eval", d / "recon", d / "metrics.json")
        outs[workers] = {str(f.relative_to(d)): f.read_bytes() for f in sorted(d.rglob("*")) if f.is_file()}
    assert outs[1].keys() == outs[2].keys()
    assert len({k.split("/")[1] for k in outs[1] if k.startswith("recon/")}) == 2  # two garments
    assert [k for k in outs[1] if outs[1][k] != outs[2][k]] == []


def test_evaluate_names_a_damaged_model_before_starting_workers(trained, tmp_path, monkeypatch):
    import shutil

    from anchorudf.errors import AnchorUDFError

    p, data, run = trained
    _with_a_shifted_garment(monkeypatch)  # two garments: the workers would start
    model = tmp_path / "model"
    shutil.copytree(run / "model", model)
    blob = bytearray((model / "model.safetensors").read_bytes())
    blob[-10] ^= 0xFF
    (model / "model.safetensors").write_bytes(bytes(blob))
    p2 = load_params(None, _same_preprocessing(p) + TINY + ["evaluate.workers=2"])
    with pytest.raises(AnchorUDFError, match="model.safetensors"):
        stages.evaluate(p2, data, model, tmp_path / "eval", tmp_path / "recon", tmp_path / "metrics.json")


def test_evaluate_scores_the_shifted_split_beside_the_test_split(trained, tmp_path, monkeypatch, capsys):
    import pandas as pd

    p, data, run = trained
    _with_a_shifted_garment(monkeypatch)
    p1 = load_params(None, _same_preprocessing(p) + TINY + ["render.test_yaws=[0.0, 40.0]"])
    summary = stages.evaluate(p1, data, run / "model", tmp_path / "eval", tmp_path / "recon",
                              tmp_path / "metrics.json")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert summary == metrics
    assert metrics["anchorudf_points"]["views"] == 2 and metrics["shifted"]["anchorudf_points"]["views"] == 2
    for method, e in metrics["shifted"].items():
        assert method in metrics
        ratio = metrics["shifted_ratio"][method]["paper_chamfer_1e3"]
        shifted, test = e["paper_chamfer_1e3"], metrics[method]["paper_chamfer_1e3"]
        if shifted is None or not test:  # a method that failed everywhere (tiny model): no ratio
            assert ratio is None
        else:
            assert np.isclose(ratio, shifted / test)
    for method in ("predicted_anchors", "oracle_retrieval"):  # never empty, even from the tiny model
        assert metrics["shifted_ratio"][method]["paper_chamfer_1e3"] > 0
    views = pd.read_csv(tmp_path / "eval" / "views.csv")
    assert list(views.columns[:4]) == ["id", "category", "yaw", "method"] and views.columns[-1] == "split"
    assert set(views["split"]) == {"test", "shifted"}
    assert views.groupby("split")["id"].nunique().to_dict() == {"shifted": 1, "test": 1}
    assert "shifted / default paper Chamfer (anchorudf_points):" in capsys.readouterr().out
    assert len(list((tmp_path / "eval" / "pictures").glob("*.png"))) == 2


def test_mesh_topology_columns_and_summary():
    """views.csv topology columns of a mesh row, and their aggregation into metrics.json."""
    import meshes
    import pandas as pd

    from anchorudf.evaluate.stage import GroundTruth, mesh_topology_row
    from anchorudf.evaluate.table import aggregate
    from anchorudf.geometry.camera import make_calib, project

    v, f = meshes.open_tube_arrays(sections=16, rings=7)
    gt = GroundTruth("g", "skirt", v, f, v, 2)
    calib = make_calib(40.0, 1.5)
    row = mesh_topology_row(project(calib, v), f, gt, calib)
    assert row == {"boundary_loops": 2, "gt_boundary_loops": 2, "nonmanifold_edges": 0, "nonmanifold_vertices": 0,
                   "pieces": 1, "boundary_length_ratio": pytest.approx(1.0)}
    from anchorudf.geometry.topology import boundary_edges

    inner = int(np.argmin(np.abs(v[:, 1])))  # a vertex on the middle ring
    assert inner not in boundary_edges(f)
    holed = f[~(f == inner).any(axis=1)]  # a pin hole: one loop more, a longer boundary
    worse = mesh_topology_row(project(calib, v), holed, gt, calib)
    assert worse["boundary_loops"] == 3 and worse["nonmanifold_edges"] == 0 and worse["boundary_length_ratio"] > 1
    a, b = f[(f == inner).any(axis=1)][0][[0, 1]]  # an interior edge gets a third face (a fin)
    fin = mesh_topology_row(project(calib, np.r_[v, [[5.0, 5.0, 5.0]]]), np.r_[f, [[a, b, len(v)]]], gt, calib)
    assert fin["nonmanifold_edges"] == 1 and fin["nonmanifold_vertices"] == 2 and fin["pieces"] == 1
    base = {"id": "g", "category": "skirt", "yaw": 0.0, "method": "anchorudf_mesh", "points": 10}
    base |= {k: 1.0 for k in ("paper_chamfer_1e3", "paper_p2s_1e3", "chamfer_l1", "p2s", "fscore", "side_iou",
                              "grad_cos")}
    summary = aggregate(pd.DataFrame([base | row, base | {"yaw": 40.0} | worse, base | {"yaw": 320.0} | fin]))
    m = summary["anchorudf_mesh"]
    assert m["boundary_loops_match"] == pytest.approx(1 / 3) and m["manifold_edges_share"] == pytest.approx(2 / 3)
    assert m["nonmanifold_edges_mean"] == pytest.approx(1 / 3) and m["pieces_median"] == 1
    assert m["boundary_loops_median"] == 3 and m["boundary_length_ratio_median"] > 1
