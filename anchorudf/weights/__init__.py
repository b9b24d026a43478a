"""The shipped weights: a trained AnchorUDF inside the package, so ``anchorudf reconstruct``
works right after install, without any pipeline run.

Layout (``anchorudf/weights/``)::

    card.json                  what is shipped: the sha256 of every file below, the recipe
                               (params file, command, steps, training time, machine), the
                               data version, and the metrics on the default and the
                               style-shifted test sets beside the 30-minute default's
    default/                   the model folder (model.safetensors, config.json,
                               checksums.json: :mod:`anchorudf.models.checkpoint`'s format)
    examples/<name>.png        example inputs (RGBA: alpha is the mask)
    examples/<name>_gt.npy     the ground-truth surface of each rendered example, in the
                               NDC of its view (float32, (N, 3))

Every file the card lists is checked against its recorded sha256 before it is used
(:func:`verify`); a damaged or mismatched file is one :class:`~anchorudf.errors.CheckpointError`
naming it. The card is written by ``pipeline/ship_weights.py`` (see its docstring).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anchorudf.errors import CheckpointError
from anchorudf.models.checkpoint import MODEL_FILES, load_model, sha256_file

if TYPE_CHECKING:
    from anchorudf.models.anchorudf import AnchorUDF

__all__ = ["CARD", "CARD_FORMAT", "WEIGHTS_DIR", "describe", "example_paths", "load_shipped", "read_card",
           "verify"]

#: The folder of the shipped weights inside the installed package.
WEIGHTS_DIR = Path(__file__).resolve().parent
CARD = "card.json"
CARD_FORMAT = "anchorudf-weights-card"


def read_card(root: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """card.json of a weights folder, parsed and shape-checked (not yet verified)."""
    path = Path(root) / CARD
    if not path.is_file():
        raise CheckpointError(f"{path}: missing: no weights are shipped in {root} "
                              "(pass --checkpoint with a model folder of your own)")
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: damaged, not valid JSON ({exc})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise CheckpointError(f"{path}: not an anchorudf weights card")
    files = card.get("sha256")
    if not isinstance(files, dict) or not isinstance(card.get("model"), str):
        raise CheckpointError(f"{path}: damaged: no 'model' folder or 'sha256' table")
    return card


def verify(root: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """Check every file the card lists against its recorded sha256; return the card."""
    root = Path(root)
    card = read_card(root)
    model_dir = card["model"]
    for name in MODEL_FILES:
        if f"{model_dir}/{name}" not in card["sha256"]:
            raise CheckpointError(f"{root / CARD}: no sha256 recorded for {model_dir}/{name}")
    for name, digest in sorted(card["sha256"].items()):
        path = root / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing (listed in {root / CARD})")
        actual = sha256_file(path)
        if actual != digest:
            raise CheckpointError(f"{path}: damaged or replaced: sha256 {actual[:16]} does not match "
                                  f"{str(digest)[:16]} recorded in {root / CARD}")
    return card


def load_shipped(device: str = "cpu", root: Path = WEIGHTS_DIR) -> tuple[AnchorUDF, dict[str, Any], dict[str, Any]]:
    """The shipped model, verified (card sha256, then the model folder's own checks).

    Returns ``(model, meta, card)``: the model in eval mode on ``device``, its config.json
    and the card.
    """
    card = verify(root)
    model, meta = load_model(Path(root) / card["model"], device=device)
    return model, meta, card


def model_dir(root: Path = WEIGHTS_DIR) -> Path:
    """The shipped model folder (verified)."""
    return Path(root) / verify(root)["model"]


def example_paths(root: Path = WEIGHTS_DIR) -> list[Path]:
    """The shipped example images, in the card's order."""
    card = read_card(root)
    return [Path(root) / e["image"] for e in card.get("examples", [])]


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else "-"


def describe(card: dict[str, Any], root: Path = WEIGHTS_DIR) -> str:
    """What is shipped, for people: recipe, data, scores beside the 30-minute default's."""
    r, d = card.get("recipe", {}), card.get("data", {})
    lines = [f"shipped weights: {Path(root) / card['model']}",
             f"  model.safetensors sha256 {card['sha256'].get(card['model'] + '/model.safetensors', '?')}",
             f"  recipe: {' then '.join(x.get('params_file', '?') for x in r.get('stages') or [r])}: "
             f"{r.get('steps', '?')} steps ({r.get('train_minutes', '?')} min on {r.get('machine', '?')})",
             f"  command: {r.get('command', '?')}",
             f"  data: {d.get('description', '?')} (manifest sha256 {str(d.get('manifest_sha256', '?'))[:16]})",
             "  scores (paper Chamfer / P2S x1e-3, dense points; lower is better):"]
    for split, title in (("test", "default test set"), ("shifted", "style-shifted set")):
        s = card.get("metrics", {}).get(split, {})
        b = card.get("baseline", {}).get(split, {})
        if s:
            lines.append(f"    {title:18s} shipped {_fmt(s.get('paper_chamfer_1e3'))} / {_fmt(s.get('paper_p2s_1e3'))}"
                         f"   30-minute default {_fmt(b.get('paper_chamfer_1e3'))} / {_fmt(b.get('paper_p2s_1e3'))}")
    for e in card.get("examples", []):
        lines.append(f"  example: {Path(root) / e['image']}  ({e.get('description', '')})")
    return "\n".join(lines)
