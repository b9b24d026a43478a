"""Nothing damaged is used silently, nothing is deleted by surprise, every error is one line.

Each test damages a copy of the tiny preprocessed dataset (``tiny_data``) the way a user, a
disk or an interrupted run could, and checks that the reader names the file and refuses it.
"""

import json
import shutil

import numpy as np
import pytest

from anchorudf import stages
from anchorudf.errors import AnchorUDFError, IntegrityError

TEST_ID = "trousers__g0"          # the test garment of tiny_data (render shard 0, samples shard 0)
TRAIN_IDS = ["skirt__g1", "skirt__g3", "trousers__g2"]


@pytest.fixture
def data(tiny_data, tmp_path):
    """A private copy of the tiny preprocessed dataset: (params, data root)."""
    p, out, _ = tiny_data
    shutil.copytree(out, tmp_path / "data")
    return p, tmp_path / "data"


def flip_byte(path, where=0.6):
    raw = bytearray(path.read_bytes())
    i = int(len(raw) * where)
    raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    return msg


def open_dataset(p, root):
    from anchorudf.train.data import build_dataset

    return build_dataset(p, "train", garments_dir=root / "garments", render_dir=root / "render",
                         cache_dir=root / "cache")


class FakeModel:
    """Stands in for load_model + reconstruct_image: records the calls, returns a small cloud."""

    def __init__(self, monkeypatch):
        import anchorudf.evaluate.stage as stage_mod
        import anchorudf.models.checkpoint as ckpt
        import anchorudf.reconstruct.image as image_mod

        self.calls = []
        for mod in (stage_mod, ckpt):
            monkeypatch.setattr(mod, "load_model", self.load_model)
        for mod in (stage_mod, image_mod):
            monkeypatch.setattr(mod, "reconstruct_image", self.reconstruct)
        # the fake model has no field to differentiate: no gradient-cosine metric
        monkeypatch.setattr(stage_mod, "gradient_cosine", lambda *args, **kwargs: float("nan"))

    def load_model(self, path, device="cpu"):
        self.calls.append("load_model")
        return object(), {"image_size": 64, "params": {"train": {"delta": 0.01}}}

    def reconstruct(self, model, image, cfg, delta, device="cpu", mesh=None):
        from anchorudf.reconstruct.image import Reconstruction

        self.calls.append("reconstruct")
        pts = np.random.default_rng(0).uniform(-0.4, 0.4, (400, 3)).astype(np.float32)
        with_mesh = cfg.mesh if mesh is None else mesh
        verts = pts[:4].astype(np.float64) if with_mesh else np.zeros((0, 3))
        faces = np.array([[0, 1, 2], [0, 2, 3]]) if with_mesh else np.zeros((0, 3), np.int64)
        return Reconstruction(pts, pts[:16], verts, faces)


def eval_params(p):
    from anchorudf.config import load_params

    d = p.to_dict()
    keep = [f"{s}.{k}={json.dumps(v)}" for s in ("garments", "render", "sample", "anchors") for k, v in d[s].items()]
    return load_params(None, keep + [f"evaluate.gt_points={d['evaluate']['gt_points']}",
                                     "evaluate.metric_points=300", "render.test_yaws=[40.0]"])


# -- 3. evaluate checks everything it reads from the caches ------------------------------------------


def test_evaluate_refuses_a_flipped_byte_in_a_ground_truth_surface(data, tmp_path, monkeypatch):
    p, root = data
    flip_byte(root / "cache" / "anchors" / f"{TEST_ID}_surface.npy")
    fake = FakeModel(monkeypatch)
    with pytest.raises(IntegrityError) as exc:
        stages.evaluate(eval_params(p), root, tmp_path / "model", tmp_path / "eval", tmp_path / "recon",
                        tmp_path / "metrics.json")
    assert f"{TEST_ID}_surface.npy: damaged" in one_line(exc)
    assert "reconstruct" not in fake.calls and not (tmp_path / "metrics.json").exists()


def test_evaluate_refuses_a_flipped_byte_in_a_retrieval_surface(data, tmp_path, monkeypatch):
    p, root = data
    flip_byte(root / "cache" / "anchors" / f"{TRAIN_IDS[0]}_surface.npy")
    FakeModel(monkeypatch)
    with pytest.raises(IntegrityError, match=f"{TRAIN_IDS[0]}_surface.npy: damaged"):
        stages.evaluate(eval_params(p), root, tmp_path / "model", tmp_path / "eval", tmp_path / "recon")


def test_load_samples_checks_what_it_reads(data):
    from anchorudf.data.cache import load_samples

    _, root = data
    load_samples(root / "cache", TEST_ID)
    flip_byte(root / "cache" / "anchors" / f"{TEST_ID}_anchors.npy")
    with pytest.raises(IntegrityError, match=f"{TEST_ID}_anchors.npy: damaged"):
        load_samples(root / "cache", TEST_ID)


def test_evaluate_with_intact_inputs_runs(data, tmp_path, monkeypatch):
    p, root = data
    fake = FakeModel(monkeypatch)
    summary = stages.evaluate(eval_params(p), root, tmp_path / "model", tmp_path / "eval", tmp_path / "recon",
                              tmp_path / "metrics.json")
    assert "anchorudf_points" in summary and fake.calls.count("reconstruct") == 1
    assert sorted(f.name for f in (tmp_path / "recon" / TEST_ID / "yaw_040.00").iterdir()) == [
        "anchors.ply", "mesh.glb", "mesh.obj", "mesh.ply", "points.ply"]


# -- 4. index ranges and provenance ------------------------------------------------------------------


def _edit_index(root, shard, fn):
    path = root / "cache" / "samples" / f"shard-{shard}" / "index.json"
    index = json.loads(path.read_text())
    fn(index)
    path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return path


def _swap_offsets(index):
    (a, ea), (b, eb) = sorted(index["garments"].items())
    shift = eb["offset"] - ea["offset"]
    for e, d in ((ea, shift), (eb, -shift)):
        e["offset"] += d
        e["classes"] = [[s + d, c] for s, c in e["classes"]]


def _shift_one(index):
    e = index["garments"][sorted(index["garments"])[0]]
    e["offset"] += 1
    e["classes"] = [[s + 1, c] for s, c in e["classes"]]


def _past_the_end(index):
    e = index["garments"][sorted(index["garments"])[-1]]
    e["offset"] = index["total"]


def _count_mismatch(index):
    e = index["garments"][sorted(index["garments"])[0]]
    e["count"] -= 10


@pytest.mark.parametrize("edit", [_swap_offsets, _shift_one, _past_the_end, _count_mismatch])
def test_edited_offsets_in_a_samples_index_are_refused(data, edit):
    p, root = data
    path = _edit_index(root, 0, edit)
    with pytest.raises(IntegrityError) as exc:
        open_dataset(p, root)
    assert str(path) in one_line(exc)


def test_edited_offsets_are_refused_by_load_samples(data):
    from anchorudf.data.cache import load_samples

    _, root = data
    _edit_index(root, 0, _swap_offsets)
    with pytest.raises(IntegrityError, match="index.json"):
        load_samples(root / "cache", TEST_ID)


def test_an_edited_manifest_is_refused(data, tmp_path, monkeypatch):
    p, root = data
    manifest = root / "garments" / "manifest.csv"
    manifest.write_text(manifest.read_text().replace(",test,", ",train,"))   # the test garment moves to train
    with pytest.raises(IntegrityError) as exc:
        open_dataset(p, root)
    assert "manifest.csv" in one_line(exc)
    FakeModel(monkeypatch)
    manifest.write_text(manifest.read_text().replace("trousers__g2,trousers,train", "trousers__g2,trousers,test"))
    with pytest.raises(IntegrityError, match="manifest.csv"):
        stages.evaluate(eval_params(p), root, tmp_path / "model", tmp_path / "eval", tmp_path / "recon")


def _swap_dirs(a, b):
    tmp = a.with_name("swap-tmp")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def test_swapped_render_folders_are_refused(data, tmp_path, monkeypatch):
    p, root = data
    _swap_dirs(root / "render" / "shard-0" / "skirt__g1", root / "render" / "shard-1" / "skirt__g3")
    with pytest.raises(IntegrityError) as exc:
        open_dataset(p, root)
    assert "views.json" in one_line(exc)
    # the test garment swapped with a train garment: evaluate refuses it too
    _swap_dirs(root / "render" / "shard-0" / "skirt__g1", root / "render" / "shard-1" / "skirt__g3")
    open_dataset(p, root)
    _swap_dirs(root / "render" / "shard-0" / TEST_ID, root / "render" / "shard-0" / "skirt__g1")
    FakeModel(monkeypatch)
    with pytest.raises(IntegrityError, match="views.json"):
        stages.evaluate(eval_params(p), root, tmp_path / "model", tmp_path / "eval", tmp_path / "recon")


def test_samples_and_anchors_are_bound_to_the_current_mesh(data):
    """A garment mesh replaced after sampling: its cached targets no longer belong to it."""
    p, root = data
    meshes = root / "garments" / "meshes"
    shutil.copy(meshes / "skirt__g3.ply", meshes / "skirt__g1.ply")
    with pytest.raises(IntegrityError, match="skirt__g1"):
        open_dataset(p, root)


def test_rerunning_the_stages_after_a_mesh_change_redoes_that_garment(data, monkeypatch):
    """The stages reuse finished garments only while their mesh is the same (resume, anchors)."""
    import anchorudf.data.sample_stage as sample_stage

    p, root = data
    meshes = root / "garments" / "meshes"
    shutil.copy(meshes / "skirt__g3.ply", meshes / "skirt__g1.ply")
    done = []
    real = sample_stage.run_per_garment
    monkeypatch.setattr(sample_stage, "run_per_garment", lambda fn, todo, *a, **k: (done.append(sorted(todo)),
                                                                                   real(fn, todo, *a, **k))[1])
    stages.anchors(p, root / "garments", root / "cache")
    assert done == [["skirt__g1"]]   # only the changed garment's anchors are recomputed
    for k in p.sample.shards:
        stages.sample(p, root / "garments", root / "cache", k)
    with pytest.raises(IntegrityError, match="skirt__g1.*another mesh"):
        open_dataset(p, root)        # the renders are still of the old mesh
    for k in p.render.shards:
        stages.render(p, root / "garments", root / "render", k)
    assert len(open_dataset(p, root)) == 18


def test_caches_made_before_the_checks_existed_get_a_clear_error(data):
    p, root = data
    # a samples index without the per-garment provenance of this version
    def old(index):
        index["format"] = 1
        for e in index["garments"].values():
            e.pop("mesh_sha256", None)
            e.pop("rows_sha256", None)
    _edit_index(root, 0, old)
    with pytest.raises(IntegrityError, match="older version.*re-run") as exc:
        open_dataset(p, root)
    one_line(exc)


def test_renders_made_before_the_checks_existed_get_a_clear_error(data):
    p, root = data
    path = root / "render" / "shard-0" / "skirt__g1" / "views.json"
    meta = json.loads(path.read_text())
    meta["source"] = {"mesh": meta["source"]["mesh"], "sha1": "0" * 40}
    for v in meta["views"]:
        v.pop("image_sha256", None)
        v.pop("mask_sha256", None)
    path.write_text(json.dumps(meta))
    with pytest.raises(IntegrityError, match="older version.*re-run") as exc:
        open_dataset(p, root)
    one_line(exc)


# -- 5. stale outputs --------------------------------------------------------------------------------


def test_reconstruct_no_mesh_into_a_used_folder_keeps_no_stale_mesh(data, tmp_path, monkeypatch):
    from anchorudf.reconstruct.run import run_reconstruct
    from anchorudf.render import load_views

    p, root = data
    FakeModel(monkeypatch)
    view = load_views(root / "render", TEST_ID)[0]
    out = tmp_path / "rec"
    first = run_reconstruct(view.image, view.mask, tmp_path / "model", out, p, mesh=True)
    assert {f.name for f in first} == {"points.ply", "anchors.ply", "mesh.ply", "mesh.obj", "mesh.glb", "preview.png"}
    (out / "notes.txt").write_text("the user's own file")
    second = run_reconstruct(view.image, view.mask, tmp_path / "model", out, p, mesh=False)
    assert {f.name for f in second} == {"points.ply", "anchors.ply", "preview.png"}
    assert not any((out / n).exists() for n in ("mesh.ply", "mesh.obj", "mesh.glb"))
    assert (out / "notes.txt").read_text() == "the user's own file"   # not ours: kept


def test_rerender_with_an_unwritable_garment_folder_leaves_no_mixed_shard(data, monkeypatch):
    """Re-render at another size while one garment's folder refuses writes (read-only disk,
    permissions): the stage lists it as failed, strict mode fails, and its old views (old
    size) are never passed off as current."""
    from pathlib import Path

    import anchorudf.utils.io as io_mod
    from anchorudf.config import load_params
    from anchorudf.render import load_views
    from anchorudf.render.stage import render_shard

    p, root = data
    bad = root / "render" / "shard-0" / "skirt__g1"

    def blocked(path):
        return Path(path).resolve().is_relative_to(bad.resolve())

    real_write, real_unlink = io_mod.write_bytes, Path.unlink

    def write_bytes(path, data_):
        if blocked(path):
            raise PermissionError(13, "Permission denied", str(path))
        real_write(path, data_)

    def unlink(self, missing_ok=False):
        if blocked(self):
            raise PermissionError(13, "Permission denied", str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(io_mod, "write_bytes", write_bytes)
    monkeypatch.setattr(Path, "unlink", unlink)
    p48 = load_params(None, [f"render.{k}={json.dumps(v)}" for k, v in p.to_dict()["render"].items()]
                      + ["render.size=48", "render.workers=1"])  # in process: the patches apply
    with pytest.warns(UserWarning, match="skirt__g1"):
        s = render_shard(root / "garments", root / "render", p48.render, 0)
    assert [f["id"] for f in s["failed"]] == ["skirt__g1"]
    with pytest.raises(IntegrityError) as exc:
        load_views(root / "render", "skirt__g1")
    assert "skirt__g1" in one_line(exc)
    from PIL import Image

    for v in load_views(root / "render", TEST_ID):   # the other garment of the shard is current
        assert Image.open(v.image).size == (48, 48)
    strict = load_params(None, [f"render.{k}={json.dumps(v)}" for k, v in p48.to_dict()["render"].items()]
                         + ["garments.strict=true"])
    with pytest.warns(UserWarning), pytest.raises(stages.StageError, match="skirt__g1"):
        stages.render(strict, root / "garments", root / "render", 0)


# -- 6. late failures --------------------------------------------------------------------------------


def _under_a_file(tmp_path):
    (tmp_path / "a-file").write_text("x")
    return tmp_path / "a-file" / "out"


def test_unwritable_evaluate_outputs_fail_before_any_work(data, tmp_path, monkeypatch):
    p, root = data
    fake = FakeModel(monkeypatch)
    bad = _under_a_file(tmp_path)
    for out, recon, metrics in [(bad, tmp_path / "r", None), (tmp_path / "e", bad, None),
                                (tmp_path / "e", tmp_path / "r", bad / "metrics.json")]:
        with pytest.raises(AnchorUDFError) as exc:
            stages.evaluate(eval_params(p), root, tmp_path / "model", out, recon, metrics)
        assert str(bad) in one_line(exc)
    assert fake.calls == []


def test_unwritable_reconstruct_output_fails_before_any_work(data, tmp_path, monkeypatch):
    from anchorudf.reconstruct.run import run_reconstruct
    from anchorudf.render import load_views

    p, root = data
    fake = FakeModel(monkeypatch)
    view = load_views(root / "render", TEST_ID)[0]
    bad = _under_a_file(tmp_path)
    with pytest.raises(AnchorUDFError) as exc:
        run_reconstruct(view.image, view.mask, tmp_path / "model", bad, p)
    assert str(bad) in one_line(exc) and fake.calls == []


@pytest.mark.parametrize("stage", ["render", "sample", "anchors"])
def test_unwritable_stage_outputs_fail_before_any_work(data, tmp_path, monkeypatch, stage):
    import anchorudf.data.sample_stage as sample_stage
    import anchorudf.utils.parallel as par

    p, root = data
    for mod in (par, sample_stage):
        monkeypatch.setattr(mod, "run_per_garment", lambda *a, **k: pytest.fail("work started"))
    bad = _under_a_file(tmp_path)
    with pytest.raises(AnchorUDFError) as exc:
        if stage == "anchors":
            stages.anchors(p, root / "garments", bad)
        else:
            getattr(stages, stage)(p, root / "garments", bad, 0)
    assert str(bad) in one_line(exc)


def test_a_corrupt_render_png_is_refused_when_the_dataset_opens(data):
    p, root = data
    png = root / "render" / "shard-1" / "skirt__g3" / "view_090.00.png"
    flip_byte(png)
    with pytest.raises(IntegrityError) as exc:
        open_dataset(p, root)
    assert str(png) in one_line(exc)
    mask = root / "render" / "shard-1" / "skirt__g3" / "mask_090.00.png"
    shutil.copy(root / "render" / "shard-1" / "skirt__g3" / "mask_000.00.png", mask)   # a valid PNG, wrong content
    flip_byte(png)
    with pytest.raises(IntegrityError, match="mask_090.00.png"):
        open_dataset(p, root)


def test_intact_dataset_opens(data):
    p, root = data
    ds = open_dataset(p, root)
    assert len(ds) == 3 * 6
