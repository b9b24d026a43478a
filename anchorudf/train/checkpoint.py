"""Self-describing checkpoints: the model can be rebuilt from a checkpoint folder alone.

On disk (every file written atomically, every folder renamed into place when complete)::

    run_dir/checkpoints/step_00000500/model.safetensors   weights (float32, safetensors)
                                     /config.json         model config, anchor_count,
                                                          image_size, step, full params
                                     /optimizer.pt        optimizer (+ AMP scaler) state
    run_dir/checkpoints/latest.json                       {"step": N, "path": "step_0000000N"}
    run_dir/model/model.safetensors + config.json          the final model, for inference
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from anchorudf.config import Params, params_from_dict
from anchorudf.utils.io import atomic_path, write_json

FORMAT = "anchorudf-model"
VERSION = 1


def model_meta(model, params: Params | None, step: int) -> dict[str, Any]:
    """config.json content for ``model`` (an AnchorUDF) after ``step`` optimisation steps."""
    return {"format": FORMAT, "version": VERSION, "step": int(step),
            "anchor_count": int(model.anchor_count), "image_size": int(model.image_size),
            "model": dataclasses.asdict(model.cfg), "params": params.to_dict() if params else None}


def write_model(folder: Path, model, meta: dict[str, Any]) -> None:
    """Write ``model.safetensors`` and ``config.json`` into ``folder``."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    write_json(folder / "config.json", meta)


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def save_checkpoint(run_dir: Path, step: int, model, optimizer, params: Params | None,
                    extra: dict[str, Any] | None = None, keep: int = 3) -> Path:
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


def export_model(folder: Path, model, params: Params | None, step: int) -> Path:
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


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no config.json next to the weights")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not an anchorudf model config (format {meta.get('format')!r})")
    return meta


def _load_weights(folder: Path, model, device) -> None:
    from safetensors.torch import load_file

    path = folder / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no model.safetensors")
    state = load_file(str(path), device=str(device))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the model (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")


def load_checkpoint(folder: Path, model, optimizer=None, device="cpu") -> dict[str, Any]:
    """Load weights (and optimizer state when given) from a checkpoint folder into
    existing objects; returns config.json's content plus ``extra`` (e.g. scaler state)."""
    import torch

    folder = Path(folder)
    meta = _read_meta(folder)
    _load_weights(folder, model, device)
    meta["extra"] = {}
    if optimizer is not None:
        opt_path = folder / "optimizer.pt"
        if not opt_path.is_file():
            raise FileNotFoundError(f"{folder}: no optimizer.pt to resume from")
        state = torch.load(opt_path, map_location=device, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        meta["extra"] = state.get("extra", {})
    return meta


def load_model(path: str | Path, device: str = "cpu"):
    """Rebuild an AnchorUDF from a model or checkpoint folder (or its model.safetensors).

    Returns ``(model, meta)``: the model in eval mode on ``device``, and config.json's
    content (model config, anchor_count, image_size, step, params).
    """
    from anchorudf.models.anchorudf import AnchorUDF

    path = Path(path)
    folder = path.parent if path.is_file() else path
    if not folder.is_dir():
        raise FileNotFoundError(f"{path}: no such model folder")
    meta = _read_meta(folder)
    cfg = params_from_dict({"model": meta["model"]}).model
    model = AnchorUDF(cfg, int(meta["anchor_count"]), int(meta["image_size"])).to(device)
    _load_weights(folder, model, device)
    model.eval()
    return model, meta
