"""Sharded sample cache and anchors: layout, checksums, staleness, resume, memory-mapped draws."""

import json
import warnings

import meshes
import numpy as np
import pytest

from anchorudf.config import AnchorsConfig, SampleConfig
from anchorudf.data import sample_stage
from anchorudf.data.cache import CacheError, SampleReader, load_samples, verify_cache
from anchorudf.data.manifest import MANIFEST_COLUMNS, write_manifest
from anchorudf.data.meshio import save_garment
from anchorudf.data.sample_stage import build_anchors, build_sample_shard, garment_rng
from anchorudf.geometry.sampling import query_points

CFG = SampleConfig(points_per_garment=1000, shards=[0, 1], workers=1)  # in process: monkeypatches apply
ACFG = AnchorsConfig(count=12, surface_samples=400)
GT = 300


def make_garments(root, broken=False):
    """Four small open tubes (shards 0 and 1 get two each); optionally one missing mesh."""
    rows = []
    for i, (r, h) in enumerate([(0.2, 1.0), (0.3, 0.9), (0.25, 1.0), (0.35, 0.7)]):
        gid = f"g{i}"
        rel = save_garment(root, gid, meshes.open_tube(r, h, sections=16, rings=5))
        rows.append({c: "" for c in MANIFEST_COLUMNS} | {"id": gid, "category": "skirt", "split": "train",
                                                          "group": gid, "source": "test", "mesh": rel})
    if broken:
        rows.append({c: "" for c in MANIFEST_COLUMNS} | {"id": "g9", "mesh": "meshes/g9.ply", "split": "train"})
    write_manifest(root, rows, [])
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    garments = make_garments(tmp_path_factory.mktemp("garments"))
    cache = tmp_path_factory.mktemp("cache")
    for k in CFG.shards:
        build_sample_shard(garments, cache, CFG, k)
    build_anchors(garments, cache, ACFG, GT)
    return garments, cache


def _bytes(cache):
    return {p.relative_to(cache).as_posix(): p.read_bytes() for p in sorted(cache.rglob("*")) if p.is_file()}


def test_layout_index_and_values(built):
    garments, cache = built
    assert verify_cache(cache, CFG, ACFG, GT) == {"shards": 2, "anchor_garments": 4}
    index = json.loads((cache / "samples/shard-0/index.json").read_text())
    assert sorted(index["garments"]) == ["g0", "g2"] and index["total"] == 2000
    assert index["direction_error"]["max_one_minus_cos"] < 2e-6
    points = np.load(cache / "samples/shard-0/points.npy", mmap_mode="r")
    sig = np.load(cache / "samples/shard-0/sigma_index.npy", mmap_mode="r")
    assert isinstance(points, np.memmap) and points.dtype == np.float32 and points.shape == (2000, 3)
    for entry in index["garments"].values():
        for c, (start, count) in enumerate(entry["classes"]):
            assert (sig[start:start + count] == c).all()
    # stored values are the float32 of what query_points computes for that garment
    from anchorudf.data.meshio import load_garment, mesh_arrays

    v, f = mesh_arrays(load_garment(garments, "meshes/g2.ply"))
    ref = query_points(v, f, CFG, garment_rng(CFG.seed, "g2"))
    got = load_samples(cache, "g2")
    for k in ("points", "udf", "closest"):
        assert np.array_equal(got[k], ref[k].astype(np.float32))
    assert got["direction"].dtype == np.float32
    assert np.abs(got["direction"] - ref["direction"]).max() < 1e-3
    assert got["anchors"].shape == (12, 3) and got["surface_points"].shape == (GT, 3)
    assert not (cache / "samples/shard-0/.parts").exists()


def test_flipped_byte_is_detected(built, tmp_path):
    import shutil

    _, cache = built
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    target = copy / "samples/shard-1/udf.npy"
    data = bytearray(target.read_bytes())
    data[-5] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(CacheError, match=r"shard-1/udf\.npy: damaged"):
        verify_cache(copy)
    data[-5] ^= 0x01
    target.write_bytes(bytes(data))
    assert verify_cache(copy)["shards"] == 2
    anchor = copy / "anchors/g3_anchors.npy"
    anchor.unlink()
    with pytest.raises(CacheError, match="g3_anchors.npy: missing"):
        verify_cache(copy, anchors_cfg=ACFG, gt_points=GT)
    (copy / "samples/shard-1/index.json").unlink()
    with pytest.raises(CacheError, match=r"shard-1/index.json: missing"):
        verify_cache(copy, sample_cfg=CFG)
    with pytest.raises(CacheError, match="missing"):
        verify_cache(tmp_path / "empty")


def test_stale_params_are_detected(built):
    _, cache = built
    with pytest.raises(CacheError, match=r"stale.*sigmas"):
        verify_cache(cache, sample_cfg=SampleConfig(points_per_garment=1000, sigmas=[0.1, 0.02, 0.003]))
    with pytest.raises(CacheError, match=r"stale.*count"):
        verify_cache(cache, anchors_cfg=AnchorsConfig(count=13, surface_samples=400), gt_points=GT)
    with pytest.raises(CacheError, match=r"stale.*gt_points"):
        verify_cache(cache, gt_points=GT + 1)
    with pytest.raises(CacheError, match=r"stale.*shards"):
        verify_cache(cache, sample_cfg=SampleConfig(points_per_garment=1000, shards=[0, 1, 2]))
    # workers does not change the content: not stale
    verify_cache(cache, sample_cfg=SampleConfig(points_per_garment=1000, workers=4))


class _Recorder:
    """Wraps a memmap and records every index it is asked for."""

    def __init__(self, arr, log):
        self.arr, self.log = arr, log

    def __getitem__(self, idx):
        self.log.append(np.array(idx, copy=True))
        return self.arr[idx]


def test_draw_mix_and_reads_only_drawn_rows(built):
    _, cache = built
    reader = SampleReader(cache)
    assert reader.garment_ids == ["g0", "g1", "g2", "g3"]
    log = []
    for shard, arrays in reader._arrays.items():
        assert all(isinstance(a, np.memmap) for a in arrays.values())
        reader._arrays[shard] = {k: _Recorder(a, log) for k, a in arrays.items()}
    out = reader.draw("g1", 101, [0.25, 0.0, 0.25, 0.5], np.random.default_rng(0))
    assert np.bincount(out["sigma_index"], minlength=4).tolist() == [25, 0, 25, 51]
    assert out["direction"].dtype == np.float32 and out["points"].shape == (101, 3)
    # exactly four reads (one per drawn array), each of the same 101 sorted rows inside g1's range
    assert len(log) == 4 and all(np.array_equal(log[0], x) for x in log)
    idx = log[0]
    entry = json.loads((cache / "samples/shard-1/index.json").read_text())["garments"]["g1"]
    assert idx.dtype.kind == "i" and len(idx) == 101 and (np.diff(idx) >= 0).all()
    assert idx.min() >= entry["offset"] and idx.max() < entry["offset"] + entry["count"]
    full = load_samples(cache, "g1")
    rel = idx - entry["offset"]
    assert np.array_equal(out["points"], full["points"][rel]) and np.array_equal(out["udf"], full["udf"][rel])
    # large draws from a small class fall back to replacement; bad mixes fail clearly
    assert len(reader.draw("g0", 5000, [0, 1, 0, 0], np.random.default_rng(1))["udf"]) == 5000
    with pytest.raises(ValueError, match="needs 4 shares"):
        reader.draw("g0", 10, [1, 1], np.random.default_rng(0))
    with pytest.raises(KeyError, match="nope"):
        reader.draw("nope", 10, [1, 1, 1, 1], np.random.default_rng(0))
    assert np.array_equal(reader.anchors("g3"), load_samples(cache, "g3")["anchors"])


def test_empty_class_share_rules(tmp_path):
    garments = make_garments(tmp_path / "garments")
    cfg = SampleConfig(points_per_garment=400, uniform_ratio=0.0, shards=[0])
    build_sample_shard(garments, tmp_path / "cache", cfg, 0)
    reader = SampleReader(tmp_path / "cache")
    out = reader.draw("g0", 50, [0, 1, 1, 1], np.random.default_rng(0))
    assert (out["sigma_index"] > 0).all()
    with pytest.raises(ValueError, match="class 'uniform'"):
        reader.draw("g0", 50, [1, 1, 1, 1], np.random.default_rng(0))


def test_resume_after_interruption_gives_same_bytes(built, tmp_path, monkeypatch):
    garments, cache = built
    real = sample_stage._sample_one
    calls = []

    def dies_after_first(*args):
        if calls:
            raise KeyboardInterrupt("simulated kill")
        calls.append(args[2])
        return real(*args)

    monkeypatch.setattr(sample_stage, "_sample_one", dies_after_first)
    with pytest.raises(KeyboardInterrupt):
        build_sample_shard(garments, tmp_path, CFG, 0)
    parts = sorted(p.name for p in (tmp_path / "samples/shard-0/.parts").glob("*.npz"))
    assert parts == ["g0.npz"] and not (tmp_path / "samples/shard-0/index.json").exists()

    redone = []
    monkeypatch.setattr(sample_stage, "_sample_one", lambda *a: (redone.append(a[2]), real(*a))[1])
    build_sample_shard(garments, tmp_path, CFG, 0)
    assert redone == ["g2"]
    assert _bytes(tmp_path / "samples/shard-0") == _bytes(cache / "samples/shard-0")


def test_broken_garment_is_reported_and_skipped(tmp_path):
    garments = make_garments(tmp_path / "garments", broken=True)
    cfg = SampleConfig(points_per_garment=200, shards=[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = build_sample_shard(garments, tmp_path / "cache", cfg, 0)
        anchors = build_anchors(garments, tmp_path / "cache", ACFG, GT)
    assert [f["id"] for f in summary["failed"]] == ["g9"] and "missing" in summary["failed"][0]["error"]
    assert [f["id"] for f in anchors["failed"]] == ["g9"] and anchors["garments"] == 4
    assert any("g9" in str(w.message) for w in caught)
    assert json.loads((tmp_path / "cache/samples/shard-0/failed.json").read_text()).keys() == {"g9"}
    assert SampleReader(tmp_path / "cache").garment_ids == ["g0", "g1", "g2", "g3"]
    verify_cache(tmp_path / "cache", cfg, ACFG, GT)


def test_workers_and_reruns_give_same_bytes(built, tmp_path):
    garments, cache = built
    cfg2 = SampleConfig(points_per_garment=1000, shards=[0, 1], workers=2)
    build_sample_shard(garments, tmp_path, cfg2, 1)
    build_anchors(garments, tmp_path, ACFG, GT, workers=2)
    a, b = _bytes(tmp_path / "samples/shard-1"), _bytes(cache / "samples/shard-1")
    assert {k: v for k, v in a.items() if k != "index.json"} == {k: v for k, v in b.items() if k != "index.json"}
    assert _bytes(tmp_path / "anchors") == _bytes(cache / "anchors")


def test_reader_pickles_as_a_path(built):
    import pickle

    _, cache = built
    reader = SampleReader(cache)
    blob = pickle.dumps(reader)
    assert len(blob) < 2000   # not the shard data
    copy = pickle.loads(blob)
    a = reader.draw("g2", 30, [1, 1, 1, 1], np.random.default_rng(9))
    b = copy.draw("g2", 30, [1, 1, 1, 1], np.random.default_rng(9))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_empty_shard(built, tmp_path):
    garments, _ = built
    cfg = SampleConfig(points_per_garment=100, shards=[0, 1, 2, 3, 4])
    summary = build_sample_shard(garments, tmp_path, cfg, 4)   # 4 garments: shard 4 gets none
    assert summary["garments"] == 0 and summary["points"] == 0
    assert verify_cache(tmp_path)["shards"] == 1
    assert SampleReader(tmp_path).garment_ids == []
