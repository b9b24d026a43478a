"""Imports flow one way: a module imports from its own package and from lower layers only.

Layers, top to bottom (the first dotted component below ``anchorudf`` names the unit)::

    5  anchorudf.__main__ > anchorudf.cli > anchorudf.stages entry points and stages, in that order
    4  anchorudf.evaluate                                    scores reconstructions
    3  anchorudf.reconstruct | anchorudf.train               siblings: never import each other
    2  anchorudf.models | anchorudf.render > anchorudf.data  render may read data; models and data are siblings
       anchorudf.weights > anchorudf.models                  the shipped model, read through models
    1  anchorudf.geometry, anchorudf.config, anchorudf.utils, anchorudf.errors, anchorudf (the package root)

Every ``import`` / ``from ... import`` counts, including those inside functions and
``if TYPE_CHECKING:`` blocks, and ``importlib.import_module("anchorudf...")`` with a
literal name. Nothing is allow-listed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import anchorudf

PACKAGE_DIR = Path(anchorudf.__file__).resolve().parent

# unit -> (layer, rank in the layer): imports go to a lower (layer, rank) only.
LAYERS: dict[str, tuple[int, int]] = {
    "__main__": (5, 2), "cli": (5, 1), "stages": (5, 0),
    "evaluate": (4, 0),
    "reconstruct": (3, 0), "train": (3, 0),
    # render reads the garment set (meshes, manifest) it renders: it sits just above data.
    "models": (2, 0), "render": (2, 1), "data": (2, 0),
    # the shipped weights: a model folder and its card, read through models.checkpoint
    "weights": (2, 1),
    "geometry": (1, 0), "config": (1, 0), "utils": (1, 0), "errors": (1, 0), "": (1, 0),
}
# Layers whose units may import each other (in the other layers they are siblings).
SAME_LAYER_OK = {1}
# (importing module, imported module) pairs let through, each with its reason.
ALLOWED: dict[tuple[str, str], str] = {
}


def module_name(path: Path, root: Path = PACKAGE_DIR) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["anchorudf", *parts])


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def unit_of(module: str) -> str:
    """'anchorudf.train.data' -> 'train'; 'anchorudf' -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _known_module(name: str, root: Path) -> bool:
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def imported_modules(source: str, module: str, package: bool, root: Path = PACKAGE_DIR):
    """(line, text, target module) for every anchorudf import in ``source``."""
    tree = ast.parse(source)
    base = module if package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, f"import {alias.name}", alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            text = f"from {'.' * node.level}{node.module or ''} import {', '.join(a.name for a in node.names)}"
            for alias in node.names:  # `from anchorudf import stages` imports a module
                sub = f"{target}.{alias.name}"
                yield node.lineno, text, sub if _known_module(sub, root) else target
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            yield node.lineno, f"import_module({node.args[0].value!r})", node.args[0].value


def violations(source: str, module: str, package: bool = False, path: str = "<string>",
               root: Path = PACKAGE_DIR) -> list[str]:
    """Human-readable upward and sibling imports of one module's source."""
    src_unit = unit_of(module)
    if src_unit not in LAYERS:
        return [f"{path}: module {module} has no layer; add its unit to LAYERS"]
    out, seen = [], set()
    for line, text, target in imported_modules(source, module, package, root):
        if target != "anchorudf" and not target.startswith("anchorudf.") or (line, target) in seen:
            continue
        seen.add((line, target))
        if (module, target) in ALLOWED:
            continue
        dst_unit = unit_of(target)
        if dst_unit == src_unit:
            continue
        if dst_unit not in LAYERS:
            out.append(f"{path}:{line}: `{text}` imports {target}, which has no layer")
            continue
        src, dst = LAYERS[src_unit], LAYERS[dst_unit]
        if dst > src:
            out.append(f"{path}:{line}: `{text}` imports upward "
                       f"({module}, layer {src[0]} -> {target}, layer {dst[0]})")
        elif dst == src and src[0] not in SAME_LAYER_OK:
            out.append(f"{path}:{line}: `{text}` imports a sibling of layer {src[0]} ({module} -> {target})")
    return out


def test_every_import_flows_downward():
    found = []
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(files) > 30
    for path in files:
        found += violations(path.read_text(), module_name(path), is_package(path),
                            str(path.relative_to(PACKAGE_DIR.parent)))
    assert not found, "imports against the layer order:\n" + "\n".join(found)


@pytest.mark.parametrize("module, source, bad", [
    ("anchorudf.reconstruct.run", "from anchorudf.evaluate.report import x\n", "upward"),
    ("anchorudf.reconstruct.run", "def f():\n    from anchorudf.train.data import x\n", "sibling"),
    ("anchorudf.train.trainer", "import anchorudf.reconstruct.dense\n", "sibling"),
    ("anchorudf.models.hourglass", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                   "    from anchorudf.data.cache import load\n", "sibling"),
    ("anchorudf.train.__main__", "from anchorudf import stages\n", "upward"),
    ("anchorudf.geometry.camera", "from ..render import layout\n", "upward"),
    ("anchorudf.evaluate.stage", "from ..cli import app\n", "upward"),
    ("anchorudf.data.cache", "import importlib\nimportlib.import_module('anchorudf.train.data')\n", "upward"),
    ("anchorudf.stages", "from anchorudf import cli\n", "upward"),
    ("anchorudf.cli", "from anchorudf.__main__ import main\n", "upward"),
    ("anchorudf.data.cache", "from anchorudf.render.layout import load_views\n", "upward"),
    ("anchorudf.data.cache", "from anchorudf.models.anchorudf import AnchorUDF\n", "sibling"),
])
def test_a_violation_is_reported_with_file_line_and_import(module, source, bad):
    found = violations(source, module, path="x.py")
    assert len(found) == 1 and bad in found[0], found
    assert found[0].startswith(f"x.py:{source.count(chr(10))}:")


@pytest.mark.parametrize("module, source", [
    ("anchorudf.evaluate.stage", "from anchorudf.reconstruct.image import x\nfrom anchorudf.train import y\n"),
    ("anchorudf.reconstruct.run", "from anchorudf.models.checkpoint import load_model\n"
                                  "from .outputs import write\nfrom anchorudf.data.images import t\n"),
    ("anchorudf.geometry.sampling", "from anchorudf.config import SampleConfig\nfrom anchorudf.utils import io\n"),
    ("anchorudf.stages", "from anchorudf.evaluate.stage import evaluate\n"),
    ("anchorudf.__main__", "from anchorudf.cli import app\n"),
    ("anchorudf.cli", "from anchorudf import stages\n"),
    ("anchorudf.render.pictures", "import numpy\nfrom anchorudf.geometry.camera import yaw_rotation\n"),
    ("anchorudf.render.stage", "from anchorudf.data.manifest import read_manifest\n"),
])
def test_downward_and_own_package_imports_pass(module, source):
    assert violations(source, module, path="x.py") == []


def test_allow_list_has_no_stale_entries():
    used = set()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        module = module_name(path)
        for _, _, target in imported_modules(path.read_text(), module, is_package(path)):
            used.add((module, target))
    stale = [f"{a} -> {b}" for a, b in ALLOWED if (a, b) not in used]
    assert not stale, "remove these ALLOWED entries, the imports are gone: " + ", ".join(stale)
