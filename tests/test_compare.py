"""pipeline/compare.py: the README's side-by-side tables from evaluate metrics files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "pipeline" / "compare.py"


def _metrics(path: Path, chamfer: float, p2s: float, shifted: bool = True) -> Path:
    pts = {"paper_chamfer_1e3": chamfer, "paper_p2s_1e3": p2s, "side_iou": 0.75, "grad_cos": 0.08, "views": 54}
    m = {"anchorudf_points": pts}
    if shifted:
        m["shifted"] = {"anchorudf_points": pts | {"paper_chamfer_1e3": 2 * chamfer, "views": 36}}
    path.write_text(json.dumps(m))
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_table_rows_in_order_with_paper_column(tmp_path):
    a = _metrics(tmp_path / "a.json", 1.2345, 2.0)
    b = _metrics(tmp_path / "b.json", 0.5, 0.75, shifted=False)
    r = _run(f"AnchorUDF={a}", f"PIFu-UDF={b}", "--paper", "AnchorUDF=0.621/0.839")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("| run | Chamfer | P2S | shifted Chamfer")
    assert lines[2] == "| AnchorUDF | 1.234 | 2.000 | 2.469 | 2.000 | 0.750 | 0.080 | 54 + 36 | 0.621 / 0.839 |"
    assert lines[3] == "| PIFu-UDF | 0.500 | 0.750 | - | - | 0.750 | 0.080 | 54 | - |"


@pytest.mark.parametrize("content, message", [(None, "No such file"), ("{", "Expecting"),
                                              ('{"x": 1}', "no 'anchorudf_points' scores")])
def test_bad_metrics_file_is_named(tmp_path, content, message):
    path = tmp_path / "m.json"
    if content is not None:
        path.write_text(content)
    r = _run(f"x={path}")
    assert r.returncode == 1 and str(path) in r.stderr and message in r.stderr


def test_bad_arguments(tmp_path):
    a = _metrics(tmp_path / "a.json", 1.0, 1.0)
    assert "LABEL=VALUE" in _run(str(a)).stderr
    assert "unknown rows" in _run(f"A={a}", "--paper", "B=1/2").stderr
