"""Training checkpoints: a model folder plus optimizer state, resumable.

On disk (every file written atomically, every folder renamed into place when complete)::

    run_dir/checkpoints/step_00000500/model.safetensors   weights (float32, safetensors)
                                     /config.json         model config, anchor_count,
                                                          image_size, step, full params,
                                                          phase (of the last step done)
                                     /optimizer.pt        optimizer (+ AMP scaler) state
                                     /checksums.json      sha256 of the three files above
    run_dir/checkpoints/latest.json                       {"step": N, "path": "step_0000000N"}
    run_dir/model/model.safetensors + config.json          the final model, for inference
                 /checksums.json                          (the weight average with train.ema)
    run_dir/model_raw/                                     with train.ema: the optimizer's
                                                          final weights, same layout
    run_dir/previous/0003-step_00001800-1a2b3c4d/         an earlier run, moved aside by
                 checkpoints/, model/                     :func:`move_run_aside`

Loading verifies every checksum, tensor and the optimizer state (:func:`load_checkpoint`;
the model side is in :mod:`anchorudf.models.checkpoint`). A write killed half-way leaves
only a temporary folder (``checkpoints/.step_00000500.*``, ``.model.*``), removed by
:func:`clean_stale_temp` when the next training starts.

The model folder format and :func:`~anchorudf.models.checkpoint.load_model` (inference)
are in :mod:`anchorudf.models.checkpoint`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anchorudf.config import Params
from anchorudf.errors import CheckpointError
from anchorudf.models.checkpoint import (MODEL_FILES, load_coarse_weights, load_weights, model_meta, one_line,
                                         read_json, verify_folder, write_checksums, write_model)
from anchorudf.utils.io import atomic_path, write_json

if TYPE_CHECKING:  # torch is imported inside the functions (fast CLI start-up)
    import torch

    from anchorudf.models.anchorudf import AnchorUDF

CHECKPOINT_FILES = MODEL_FILES + ("optimizer.pt",)
#: Earlier runs kept under ``run_dir/previous`` (older ones are removed, with a warning).
KEEP_PREVIOUS = 2
# Names of our temporary folders/files: tempfile.mkdtemp(prefix=".<final name>.") in
# save_checkpoint / export_model (+ ".old" while replacing), atomic_path's ".<name>.*".
_STEP_TEMP = re.compile(r"\.step_\d{8}\..+")
_MODEL_TEMP = re.compile(r"\.model(_raw)?\..+")
_LATEST_TEMP = re.compile(r"\.latest\.json\..+")


def _replace_dir(tmp: Path, final: Path) -> None:
    """Rename the complete folder ``tmp`` to ``final``; an old ``final`` is renamed away
    (to a temporary name) first and only removed once the new one is in place."""
    old = None
    if final.exists():
        old = tmp.with_name(tmp.name + ".old")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(run_dir: Path, step: int, model: AnchorUDF, optimizer: torch.optim.Optimizer,
                    params: Params | None, extra: dict[str, Any] | None = None, keep: int = 3,
                    phase: str | None = None) -> Path:
    """Write checkpoint ``step`` under ``run_dir/checkpoints``, point ``latest`` at it, keep
    the newest ``keep`` checkpoints. ``extra`` (e.g. the AMP scaler state) goes into
    optimizer.pt; ``phase`` (the training phase of the last step done) into config.json.
    Returns the checkpoint folder."""
    import torch

    ckdir = Path(run_dir) / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    final = ckdir / f"step_{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=ckdir))
    try:
        meta = model_meta(model, params, step)
        if phase is not None:
            meta["phase"] = phase
        write_model(tmp, model, meta, checksums=False)
        with atomic_path(tmp / "optimizer.pt") as t:
            torch.save({"optimizer": optimizer.state_dict(), "extra": extra or {}}, t)
        write_checksums(tmp)  # last: a folder with checksums.json is complete
        _replace_dir(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    write_json(ckdir / "latest.json", {"step": int(step), "path": final.name})
    _prune(ckdir, keep, final.name)
    return final


def export_model(folder: Path, model: AnchorUDF, params: Params | None, step: int) -> Path:
    """Write the inference model (model.safetensors, config.json, checksums.json) as one atomic folder."""
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


def clean_stale_temp(run_dir: Path) -> list[Path]:
    """Remove the temporary folders/files that killed checkpoint and model writes left in
    ``run_dir`` (only our own temp names; call it when no write is in progress)."""
    run_dir = Path(run_dir)
    found = []
    if run_dir.is_dir():
        found += [p for p in run_dir.iterdir() if p.is_dir() and _MODEL_TEMP.fullmatch(p.name)]
    ckdir = run_dir / "checkpoints"
    if ckdir.is_dir():
        found += [p for p in ckdir.iterdir()
                  if (p.is_dir() and _STEP_TEMP.fullmatch(p.name)) or (p.is_file() and _LATEST_TEMP.fullmatch(p.name))]
    for p in sorted(found):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return sorted(found)


def run_label(run_dir: Path) -> tuple[int, dict | None]:
    """(step, params) of the run in ``run_dir`` (latest checkpoint, else model/), as far as
    readable: it names the folder the run is moved to."""
    run_dir = Path(run_dir)
    candidates = []
    pointer = run_dir / "checkpoints" / "latest.json"
    try:
        rel = read_json(pointer).get("path") if pointer.is_file() else None
        if isinstance(rel, str):
            candidates.append(pointer.parent / rel)
    except (CheckpointError, AttributeError):
        pass
    candidates += [run_dir / "model"]
    candidates += sorted((run_dir / "checkpoints").glob("step_*"), reverse=True)
    for folder in candidates:
        try:
            meta = read_json(folder / "config.json")
            return int(meta.get("step", 0)), meta.get("params")
        except (CheckpointError, OSError, AttributeError, TypeError, ValueError):
            continue
    return 0, None


def has_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds checkpoints or a model of some run."""
    run_dir = Path(run_dir)
    ck = run_dir / "checkpoints"
    return (run_dir / "model").exists() or (ck.is_dir() and any(not p.name.startswith(".") for p in ck.iterdir()))


def move_run_aside(run_dir: Path, label: str, keep: int = KEEP_PREVIOUS) -> tuple[Path, list[Path]]:
    """Move ``run_dir``'s ``checkpoints/`` and ``model/`` (renames, nothing copied or deleted)
    to ``run_dir/previous/<NNNN>-<label>``, NNNN one more than the highest there; then remove
    all but the newest ``keep`` folders of ``previous/``. Returns (the new folder, the removed ones)."""
    prev = Path(run_dir) / "previous"
    prev.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[:4]) for p in prev.iterdir() if p.is_dir() and re.match(r"\d{4}-", p.name)]
    dest = prev / f"{max(numbers, default=0) + 1:04d}-{label}"
    dest.mkdir()
    for name in ("checkpoints", "model", "model_raw"):
        if (Path(run_dir) / name).exists():
            os.replace(Path(run_dir) / name, dest / name)
    runs = sorted(p for p in prev.iterdir() if p.is_dir() and re.match(r"\d{4}-", p.name))
    removed = runs[:-keep] if keep > 0 else runs
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return dest, removed


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The folder ``run_dir/checkpoints/latest.json`` points at, or None when there is none."""
    pointer = Path(run_dir) / "checkpoints" / "latest.json"
    if not pointer.is_file():
        return None
    record = read_json(pointer)
    rel = record.get("path") if isinstance(record, dict) else None
    if not isinstance(rel, str) or not re.fullmatch(r"step_\d{8}", rel):
        raise CheckpointError(f"{pointer}: damaged, not a latest-checkpoint pointer ({record!r:.80})")
    folder = pointer.parent / rel
    if not (folder / "model.safetensors").is_file():
        raise CheckpointError(f"{pointer}: points at {folder}, which has no model.safetensors")
    return folder


def load_checkpoint(folder: Path, model: AnchorUDF, optimizer: torch.optim.Optimizer | None = None,
                    device: str | torch.device = "cpu", coarse: bool = False) -> dict[str, Any]:
    """Load weights (and optimizer state when given) from a checkpoint folder into
    existing objects; returns config.json's content plus ``extra`` (e.g. scaler state).

    Every file is verified first (checksums, tensors, optimizer state): a damaged or
    unfitting checkpoint raises :class:`CheckpointError` naming the file and loads nothing.
    ``coarse``: the folder holds a coarse model and ``model`` is its HD model
    (:func:`~anchorudf.models.checkpoint.load_coarse_weights`); the optimizer state of the
    coarse parameters is carried over (they come first in the HD model, the fine ones have
    none yet), exactly what an uninterrupted HD run holds at that step.
    """
    folder = Path(folder)
    meta = verify_folder(folder, CHECKPOINT_FILES if optimizer is not None else MODEL_FILES)
    state = None
    if optimizer is not None:
        state = _read_optimizer(folder / "optimizer.pt", device)
    if coarse:
        load_coarse_weights(folder, model)
        if state is not None:
            state = {**state, "optimizer": _widen_optimizer_state(folder / "optimizer.pt", state["optimizer"],
                                                                  optimizer)}
    else:
        load_weights(folder, model, device)
    meta["extra"] = {}
    if state is not None:
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{folder / 'optimizer.pt'}: does not fit the optimizer ({one_line(exc)})") from None
        meta["extra"] = state.get("extra") or {}
    return meta


def _widen_optimizer_state(path: Path, coarse: dict, optimizer: torch.optim.Optimizer) -> dict:
    """A coarse model's optimizer state for its HD model's optimizer: one parameter group
    whose first parameters are the coarse ones (same order), the fine ones without state."""
    groups = coarse.get("param_groups")
    if not isinstance(groups, list) or len(groups) != 1 or len(optimizer.param_groups) != 1:
        raise CheckpointError(f"{path}: expected one parameter group to carry into the HD model")
    n_coarse, n_all = len(groups[0].get("params", [])), len(optimizer.param_groups[0]["params"])
    if n_coarse > n_all:
        raise CheckpointError(f"{path}: holds {n_coarse} parameters, more than the HD model's {n_all}")
    return {"state": coarse.get("state", {}), "param_groups": [{**groups[0], "params": list(range(n_all))}]}


def _read_optimizer(path: Path, device: str | torch.device) -> dict[str, Any]:
    import torch

    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types on damaged files
        raise CheckpointError(f"{path}: damaged, not a readable optimizer state ({one_line(exc)})") from None
    if not isinstance(state, dict) or not isinstance(state.get("optimizer"), dict):
        raise CheckpointError(f"{path}: damaged, not an anchorudf optimizer state")
    for key, slot in sorted(state["optimizer"].get("state", {}).items(), key=lambda kv: str(kv[0])):
        for name, value in sorted(slot.items()) if isinstance(slot, dict) else []:
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise CheckpointError(f"{path}: optimizer state {name} of parameter {key} holds "
                                      "non-finite values: the file is damaged")
    return state
