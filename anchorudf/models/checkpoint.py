"""The model folder format, read side and weights: enough to rebuild a model for inference.

A model folder (``run_dir/model`` or a checkpoint ``run_dir/checkpoints/step_N``) holds::

    model.safetensors   weights (float32, safetensors)
    config.json         {"format": FORMAT, "version": VERSION, "step", "anchor_count",
                         "image_size", "model": ModelConfig, "params": the full params}

Training checkpoints (optimizer state, ``latest.json``, pruning, resuming) are in
:mod:`anchorudf.train.checkpoint`, built on these functions.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anchorudf.config import Params, params_from_dict
from anchorudf.utils.io import atomic_path, write_json

if TYPE_CHECKING:  # torch is imported inside the functions (fast CLI start-up)
    import torch

    from anchorudf.models.anchorudf import AnchorUDF

FORMAT = "anchorudf-model"
VERSION = 1


def model_meta(model: AnchorUDF, params: Params | None, step: int) -> dict[str, Any]:
    """config.json content for ``model`` (an AnchorUDF) after ``step`` optimisation steps."""
    return {"format": FORMAT, "version": VERSION, "step": int(step),
            "anchor_count": int(model.anchor_count), "image_size": int(model.image_size),
            "model": dataclasses.asdict(model.cfg), "params": params.to_dict() if params else None}


def write_model(folder: Path, model: AnchorUDF, meta: dict[str, Any]) -> None:
    """Write ``model.safetensors`` and ``config.json`` into ``folder``."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    write_json(folder / "config.json", meta)


def read_meta(folder: Path) -> dict[str, Any]:
    """config.json of a model folder (FileNotFoundError / ValueError when it is not one)."""
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no config.json next to the weights")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not an anchorudf model config (format {meta.get('format')!r})")
    return meta


def load_weights(folder: Path, model: AnchorUDF, device: str | torch.device) -> None:
    """Load ``folder/model.safetensors`` into ``model`` (every tensor must fit)."""
    from safetensors.torch import load_file

    path = folder / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no model.safetensors")
    state = load_file(str(path), device=str(device))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the model (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")


def load_model(path: str | Path, device: str = "cpu") -> tuple[AnchorUDF, dict[str, Any]]:
    """Rebuild an AnchorUDF from a model or checkpoint folder (or its model.safetensors).

    Returns ``(model, meta)``: the model in eval mode on ``device``, and config.json's
    content (model config, anchor_count, image_size, step, params).
    """
    from anchorudf.models.anchorudf import AnchorUDF

    path = Path(path)
    folder = path.parent if path.is_file() else path
    if not folder.is_dir():
        raise FileNotFoundError(f"{path}: no such model folder")
    meta = read_meta(folder)
    cfg = params_from_dict({"model": meta["model"]}).model
    model = AnchorUDF(cfg, int(meta["anchor_count"]), int(meta["image_size"])).to(device)
    load_weights(folder, model, device)
    model.eval()
    return model, meta
