"""Run folders: resume the latest checkpoint of the same run, or start a new one.

A run dir holds one run (``checkpoints/``, ``model/``). :func:`resume` continues it when
its checkpoint was made with the same params (but the keys in ``_RESUME_NEUTRAL``), moves
it aside to ``previous/`` otherwise, and continues a coarse run as AnchorUDF-HD when only
the HD keys differ. :func:`init_weights` starts a new run from other weights
(``train.init``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from anchorudf.config import Params
from anchorudf.train.distributed import barrier
from anchorudf.train.schedule import phase_at

if TYPE_CHECKING:
    from anchorudf.train.trainer import Trainer


# Params that do not change what a run computes: a checkpoint written under other
# values of these can still be resumed.
_RESUME_NEUTRAL = {"device", "num_workers", "log_every", "ckpt_every", "resume", "threads"}


def _outcome_params(params: dict) -> dict:
    out = {k: v for k, v in params.items() if k != "train"}
    out["train"] = {k: v for k, v in params.get("train", {}).items() if k not in _RESUME_NEUTRAL}
    return out


def _with_defaults(params: dict) -> dict:
    """A checkpoint's recorded params with the keys added to the schema since it was written
    filled in with their defaults (new keys default to the earlier behaviour), so adding a
    param does not turn every existing run into one "made with other params"."""
    out = Params().to_dict()
    for section, values in (params or {}).items():
        out[section] = {**out[section], **values} if isinstance(values, dict) and section in out else values
    return out


_HD_MODEL_KEYS = ("hd_enabled", "hd_channels", "hd_depth", "hd_decoder")
_HD_TRAIN_KEYS = ("hd_steps", "hd_train")


def _coarse_params(params: dict) -> dict:
    """``_outcome_params`` without the keys that only the HD phase reads."""
    out = _outcome_params(params)
    out["model"] = {k: v for k, v in out.get("model", {}).items() if k not in _HD_MODEL_KEYS}
    out["train"] = {k: v for k, v in out.get("train", {}).items() if k not in _HD_TRAIN_KEYS}
    return out


def _continues_into_hd(meta: dict, params: Params) -> bool:
    """Whether checkpoint ``meta`` is of a coarse run that an HD run with ``params``
    continues: the same params but the HD ones, HD off there, on here, and its step at most
    steps + gda_steps (within the coarse phases, where the HD run holds exactly the coarse
    run's weights and optimizer state, its fine level frozen and untouched)."""
    have = _with_defaults(meta.get("params") or {})
    if not params.model.hd_enabled or (have.get("model") or {}).get("hd_enabled", False):
        return False
    if not 0 < int(meta.get("step", -1)) <= params.train.steps + params.train.gda_steps:
        return False
    return _coarse_params(have) == _coarse_params(params.to_dict())


def _params_hash(params: dict | None) -> str:
    """8 hex digits identifying what a run computes (``_outcome_params``), for folder names."""
    if not isinstance(params, dict):
        return "unknown"
    text = json.dumps(_outcome_params(params), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _start_new_run(run_dir: Path, why: str) -> None:
    """Move the run in ``run_dir`` (checkpoints/ and model/) to ``run_dir/previous`` with a warning."""
    import warnings

    from anchorudf.train.checkpoint import KEEP_PREVIOUS, move_run_aside, run_label

    step, old_params = run_label(run_dir)
    dest, removed = move_run_aside(run_dir, f"step_{step:08d}-{_params_hash(old_params)}")
    gone = f"; removed the older {', '.join(p.name for p in removed)} (keeping the newest {KEEP_PREVIOUS})" \
        if removed else ""
    warnings.warn(f"{why}; starting a new run: the previous run's checkpoints and model were moved "
                  f"to {dest}{gone}", stacklevel=3)


def init_weights(model, init: str) -> Path:
    """Load the weights of ``init`` (a model or checkpoint folder, or ``"shipped"``: the
    verified shipped weights) into ``model`` before the first step of a new run; returns the
    folder. The folder's checksums, tensor names and shapes, recorded model config, anchor
    count and image size must fit ``model``: otherwise one
    :class:`~anchorudf.errors.CheckpointError` naming the file. A resumed run keeps its
    checkpoint instead (its weights already started from ``init``)."""
    from anchorudf.models.checkpoint import load_weights, verify_folder

    if init == "shipped":
        from anchorudf.weights import model_dir

        folder = model_dir()
    else:
        folder = Path(init)
        if not folder.is_dir():
            raise FileNotFoundError(f"train.init: {folder} is not a model folder")
        verify_folder(folder)
    load_weights(folder, model, source=f"the params (train.init {init})")
    return folder


def _prepare_run_dir(params: Params, run_dir: Path) -> tuple[Path | None, str | None]:
    """Clean stale temp folders; decide (main process) between resuming the latest checkpoint
    (returned) and a new run (the old one moved aside; the reason returned)."""
    import warnings

    from anchorudf.models.checkpoint import read_meta
    from anchorudf.train.checkpoint import clean_stale_temp, has_run, latest_checkpoint

    stale = clean_stale_temp(run_dir)
    if stale:
        warnings.warn(f"{run_dir}: removed {len(stale)} leftover temporary folder(s) of interrupted "
                      f"checkpoint/model writes ({', '.join(p.name for p in stale[:3])})", stacklevel=3)
    if not has_run(run_dir):
        return None, None
    if params.train.resume != "auto":
        return None, f"{run_dir}: train.resume=never"
    folder = latest_checkpoint(run_dir)
    if folder is None:
        return None, f"{run_dir}: no checkpoint to resume from"
    have = read_meta(folder)
    if _continues_into_hd(have, params):
        return folder, None
    if _outcome_params(_with_defaults(have.get("params") or {})) != _outcome_params(params.to_dict()):
        return None, f"{folder}: checkpoint made with other params"
    return folder, None


def resume(trainer: Trainer, params: Params, run_dir: Path) -> int:
    """Load the latest checkpoint of ``run_dir`` when train.resume is auto; the step to start at.

    Only a checkpoint made with the same params (all sections, except the train keys in
    ``_RESUME_NEUTRAL``) is resumed, after verifying it (checksums, tensors, optimizer
    state; a damaged one raises :class:`~anchorudf.errors.CheckpointError`). A run dir that
    holds another run (other params, e.g. ``dvc exp run -S train.lr=...`` on a persisted run
    dir, or train.resume=never) gets a new run: the old ``checkpoints/`` and ``model/`` are
    moved, not deleted, to ``run_dir/previous/NNNN-step_<step>-<params hash>`` (the newest
    ``KEEP_PREVIOUS`` kept) with a warning saying where, so a run never mixes two
    configurations and never loses the previous model before it has a new one.

    An HD run (model.hd_enabled) whose run dir holds a coarse run of the same params but
    the HD ones (:func:`_continues_into_hd`; finished, or stopped within its phases)
    continues it: the coarse weights and optimizer state are loaded into the HD model (the
    fine level freshly initialised, as in an uninterrupted HD run) and training goes on,
    through the HD phase.
    """
    import warnings

    from anchorudf.errors import CheckpointError
    from anchorudf.models.checkpoint import read_meta
    from anchorudf.train.checkpoint import latest_checkpoint, load_checkpoint

    hint = ("; cannot resume (-S train.resume=never starts a new run and moves this one to "
            f"{run_dir / 'previous'})")
    folder, why = None, None
    try:
        if trainer.dist.main:
            folder, why = _prepare_run_dir(params, run_dir)
            if why is not None:
                _start_new_run(run_dir, why)
        barrier(trainer.dist)
        if not trainer.dist.main:
            folder = latest_checkpoint(run_dir)  # what the main process kept (None for a new run)
        if folder is None:
            return 0
        coarse = _continues_into_hd(read_meta(folder), params)
        meta = load_checkpoint(folder, trainer.model, trainer.optimizer, trainer.device, coarse=coarse)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}{hint}") from None
    step = int(meta["step"])
    recorded = meta.get("phase")
    if recorded is not None and step > 0 and not coarse and recorded != phase_at(params.train, step - 1):
        raise CheckpointError(f"{folder}: records phase {recorded!r} after step {step}, the params "
                              f"schedule phase {phase_at(params.train, step - 1)!r} there{hint}")
    if coarse and trainer.dist.main:
        warnings.warn(f"{folder}: a coarse run of these params (step {step}): continuing it as "
                      f"AnchorUDF-HD, through the HD phase (train.hd_steps {params.train.hd_steps})",
                      stacklevel=3)
    trainer.load_extra_state(meta["extra"], str(folder / "optimizer.pt"), coarse=coarse)
    return step
