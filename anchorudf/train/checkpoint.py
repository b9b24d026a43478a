"""Training checkpoints: a model folder plus optimizer state, resumable.

On disk (every file written atomically, every folder renamed into place when complete)::

    run_dir/checkpoints/step_00000500/model.safetensors   weights (float32, safetensors)
                                     /config.json         model config, anchor_count,
                                                          image_size, step, full params
                                     /optimizer.pt        optimizer (+ AMP scaler) state
    run_dir/checkpoints/latest.json                       {"step": N, "path": "step_0000000N"}
    run_dir/model/model.safetensors + config.json          the final model, for inference

The model folder format and :func:`~anchorudf.models.checkpoint.load_model` (inference)
are in :mod:`anchorudf.models.checkpoint`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anchorudf.config import Params
from anchorudf.models.checkpoint import load_weights, model_meta, read_meta, write_model
from anchorudf.utils.io import atomic_path, write_json

if TYPE_CHECKING:  # torch is imported inside the functions (fast CLI start-up)
    import torch

    from anchorudf.models.anchorudf import AnchorUDF


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def save_checkpoint(run_dir: Path, step: int, model: AnchorUDF, optimizer: torch.optim.Optimizer,
                    params: Params | None, extra: dict[str, Any] | None = None, keep: int = 3) -> Path:
    """Write checkpoint ``step`` under ``run_dir/checkpoints``, point ``latest`` at it, keep
    the newest ``keep`` checkpoints. ``extra`` (e.g. the AMP scaler state) goes into
    optimizer.pt. Returns the checkpoint folder."""
    import torch

    ckdir = Path(run_dir) / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    final = ckdir / f"step_{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=ckdir))
    try:
        write_model(tmp, model, model_meta(model, params, step))
        with atomic_path(tmp / "optimizer.pt") as t:
            torch.save({"optimizer": optimizer.state_dict(), "extra": extra or {}}, t)
        _replace_dir(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    write_json(ckdir / "latest.json", {"step": int(step), "path": final.name})
    _prune(ckdir, keep, final.name)
    return final


def export_model(folder: Path, model: AnchorUDF, params: Params | None, step: int) -> Path:
    """Write the inference model (model.safetensors + config.json) as one atomic folder."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        write_model(tmp, model, model_meta(model, params, step))
        _replace_dir(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def _prune(ckdir: Path, keep: int, latest: str) -> None:
    steps = sorted(p for p in ckdir.glob("step_*") if p.is_dir())
    for p in steps[:-keep] if keep > 0 else []:
        if p.name != latest:
            shutil.rmtree(p, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The folder ``run_dir/checkpoints/latest.json`` points at, or None when there is none."""
    pointer = Path(run_dir) / "checkpoints" / "latest.json"
    if not pointer.is_file():
        return None
    try:
        rel = json.loads(pointer.read_text())["path"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{pointer}: not a valid latest-checkpoint pointer ({exc})") from None
    folder = pointer.parent / rel
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{pointer}: points at {folder}, which has no model.safetensors")
    return folder


def load_checkpoint(folder: Path, model: AnchorUDF, optimizer: torch.optim.Optimizer | None = None,
                    device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load weights (and optimizer state when given) from a checkpoint folder into
    existing objects; returns config.json's content plus ``extra`` (e.g. scaler state)."""
    import torch

    folder = Path(folder)
    meta = read_meta(folder)
    load_weights(folder, model, device)
    meta["extra"] = {}
    if optimizer is not None:
        opt_path = folder / "optimizer.pt"
        if not opt_path.is_file():
            raise FileNotFoundError(f"{folder}: no optimizer.pt to resume from")
        state = torch.load(opt_path, map_location=device, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        meta["extra"] = state.get("extra", {})
    return meta
