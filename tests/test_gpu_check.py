"""benchmarks/gpu_check.sh and its helper: what can be checked without a GPU (syntax, the
fail-fast path, argument parsing, the mask comparison on two OSMesa renders, the table,
and the train / dense steps on the CPU with a tiny model)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
TINY = ["-S", "train.points=64", "-S", "model.stacks=1", "-S", "model.depth=1", "-S", "model.channels=8",
        "-S", "model.grid=8", "-S", "model.pos_channels=4", "-S", "model.decoder=[32, 16]",
        "-S", "anchors.count=20", "-S", "render.size=32"]


@pytest.fixture(scope="module")
def gc():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _has_gpu() -> bool:
    exe = shutil.which("nvidia-smi")
    return exe is not None and subprocess.run([exe, "-L"], capture_output=True).returncode == 0


def test_script_syntax():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.skipif(_has_gpu(), reason="a GPU is present: the script would run")
def test_script_fails_fast_without_gpu():
    # "fast": it stops before any work (the timeout bounds it; no wall-clock assertion)
    r = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    assert "no CUDA device" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_preflight_without_cuda(gc, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert gc.main(["preflight"]) == gc.NO_CUDA
    assert "no CUDA device" in capsys.readouterr().err


def test_argument_parsing(gc):
    p = gc.build_parser()
    a = p.parse_args(["render", "--backend", "egl", "--out", "x.npz"])
    assert (a.size, a.views, a.backend) == (512, 36, "egl")
    a = p.parse_args(["train", "--amp", "off"])
    assert a.steps == 50 and a.params == gc.PAPER and a.device == "cuda" and a.amp == "off"
    a = p.parse_args(["dense"])
    assert a.points == 900_000 and a.model is None
    a = p.parse_args(["torchrun", "--nproc", "2", "-S", "train.lr=1e-4"])
    assert a.nproc == 2 and a.set == ["train.lr=1e-4"]
    with pytest.raises(SystemExit):
        p.parse_args(["render", "--backend", "vulkan", "--out", "x.npz"])
    cmd = gc.train_command(p.parse_args(["train", "--amp", "on"]), Path("w"), 50, True)
    assert cmd[1:4] == ["-m", "anchorudf", "train"] and "--synthetic" in cmd
    # The paper preset is AnchorUDF-HD: main, GDA and HD phases all run.
    assert {"train.amp=true", "train.device=cuda", "train.steps=30", "train.gda_steps=10",
            "train.hd_steps=10"} <= set(cmd)
    cmd = gc.train_command(p.parse_args(["train", "--amp", "on", "-S", "model.hd_enabled=false"]), Path("w"), 50, True)
    assert {"train.steps=30", "train.gda_steps=20"} <= set(cmd)
    assert gc.PAPER.is_file()


def test_compare_masks(gc):
    a = np.zeros((2, 8, 8), bool)
    a[:, 2:6, 2:6] = True
    assert gc.compare_masks(a, a.copy())["max_mismatch"] == 0.0
    b = a.copy()
    b[1, 2, 2] = False
    s = gc.compare_masks(a, b)
    assert s["worst_view"] == 1 and s["differing_pixels"] == 1 and s["max_mismatch"] == pytest.approx(1 / 16)
    with pytest.raises(ValueError, match="shape"):
        gc.compare_masks(a, a[:1])


def test_two_osmesa_renders_agree_and_a_changed_mask_fails(gc, tmp_path, capsys):
    table = tmp_path / "t.jsonl"
    for name in ("a", "b"):
        assert gc.main(["--table", str(table), "render", "--backend", "osmesa", "--size", "64",
                        "--views", "3", "--out", str(tmp_path / f"{name}.npz")]) == 0
    assert gc.main(["--table", str(table), "compare", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 0
    with np.load(tmp_path / "b.npz") as z:
        data = dict(z)
    assert "llvmpipe" in str(data["gl_renderer"]).lower() or "unknown" in str(data["gl_renderer"])
    data["masks"][1, :, :20] = ~data["masks"][1, :, :20]
    np.savez(tmp_path / "c.npz", **data)
    assert gc.main(["--table", str(table), "compare", str(tmp_path / "a.npz"), str(tmp_path / "c.npz")]) == 1
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    assert [r["result"] for r in rows] == ["PASS", "PASS", "PASS", "FAIL"]
    capsys.readouterr()
    assert gc.main(["--table", str(table), "table"]) == 1
    out = capsys.readouterr().out
    assert "masks egl=osmesa" in out and "FAILED: masks egl=osmesa" in out


def test_table_missing_rows_fail(gc, tmp_path, capsys):
    table = tmp_path / "t.jsonl"
    gc.record(table, "render egl", True, 1.0, "ok")
    assert gc.main(["--table", str(table), "table", "--expect", "render egl"]) == 0
    assert gc.main(["--table", str(table), "table", "--expect", "render egl", "dense 900k"]) == 1
    assert gc.main(["--table", str(tmp_path / "none.jsonl"), "table"]) == 1


def test_parse_metrics(gc):
    out = 'noise {not json\n{\n  "loss": 0.5,\n  "step": 50.0\n}\n'
    assert gc.parse_metrics(out) == {"loss": 0.5, "step": 50.0}
    with pytest.raises(ValueError):
        gc.parse_metrics("nothing")


@pytest.mark.slow
def test_train_and_dense_steps_on_cpu(gc, tmp_path):
    table = tmp_path / "t.jsonl"
    common = ["--device", "cpu", "--params", str(ROOT / "params.yaml")] + TINY
    assert gc.main(["--table", str(table), "train", "--amp", "off", "--steps", "3", "--work", str(tmp_path)]
                   + common) == 0
    model = tmp_path / "train-amp-off" / "run" / "model"
    assert model.is_dir()
    assert gc.main(["--table", str(table), "dense", "--model", str(model), "--points", "3000",
                    "-S", "evaluate.seed_points=3000", "-S", "evaluate.batch_points=3000"] + common) == 0
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    assert [r["check"] for r in rows] == ["train amp off", "dense 3000"]
    assert "3 steps" in rows[0]["detail"] and "3000 of 3000 points" in rows[1]["detail"]
