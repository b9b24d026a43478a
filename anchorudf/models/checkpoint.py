"""The model folder format, read side and weights: enough to rebuild a model for inference.

A model folder (``run_dir/model`` or a checkpoint ``run_dir/checkpoints/step_N``) holds::

    model.safetensors   weights (float32, safetensors); its metadata records image_size,
                        anchor_count and the model config the weights were made for
    config.json         {"format": FORMAT, "version": VERSION, "step", "anchor_count",
                         "image_size", "model": ModelConfig, "params": the full params}
    checksums.json      {"format": "anchorudf-checksums", "sha256": {file: hex digest}} of
                        every other file (written last, atomically)

Everything is verified before a model is used (:func:`verify_folder`,
:func:`load_weights`): the sha256 of every file, the weights' tensor names and shapes
against the model built from config.json, config.json's image_size / anchor_count /
model config against the weights' metadata, and the weights' values (finite and below
:data:`MAX_ABS_WEIGHT`). Any failure is one :class:`~anchorudf.errors.CheckpointError`
naming the file. A folder without checksums.json (written before checksums were
recorded) is accepted with one warning; the other checks still apply.

Training checkpoints (optimizer state, ``latest.json``, pruning, resuming) are in
:mod:`anchorudf.train.checkpoint`, built on these functions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from anchorudf.config import ConfigError, Params, params_from_dict
from anchorudf.errors import CheckpointError
from anchorudf.utils.io import atomic_path, write_json

if TYPE_CHECKING:  # torch is imported inside the functions (fast CLI start-up)
    import torch

    from anchorudf.models.anchorudf import AnchorUDF

FORMAT = "anchorudf-model"
VERSION = 1
CHECKSUMS = "checksums.json"
CHECKSUMS_FORMAT = "anchorudf-checksums"
#: The files of an inference model folder.
MODEL_FILES = ("model.safetensors", "config.json")
#: No trained weight comes near this: a larger one is damage (e.g. a flipped exponent bit).
MAX_ABS_WEIGHT = 1e15
_META = "anchorudf."  # prefix of our keys in the safetensors metadata


def one_line(exc: BaseException) -> str:
    """An exception as one short line (library errors can span many lines)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_meta(model: AnchorUDF, params: Params | None, step: int) -> dict[str, Any]:
    """config.json content for ``model`` (an AnchorUDF) after ``step`` optimisation steps."""
    return {"format": FORMAT, "version": VERSION, "step": int(step),
            "anchor_count": int(model.anchor_count), "image_size": int(model.image_size),
            "model": dataclasses.asdict(model.cfg), "params": params.to_dict() if params else None}


def weights_metadata(model: AnchorUDF) -> dict[str, str]:
    """What the weights were made for, stored in the safetensors header: config.json must agree
    (image_size cannot always be told from the tensor shapes)."""
    return {f"{_META}image_size": str(int(model.image_size)),
            f"{_META}anchor_count": str(int(model.anchor_count)),
            f"{_META}model": json.dumps(dataclasses.asdict(model.cfg), sort_keys=True)}


def write_model(folder: Path, model: AnchorUDF, meta: dict[str, Any], checksums: bool = True) -> None:
    """Write ``model.safetensors`` and ``config.json`` into ``folder``, then (``checksums``)
    ``checksums.json``; a caller adding files writes the checksums itself, last."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", **weights_metadata(model)})
    write_json(folder / "config.json", meta)
    if checksums:
        write_checksums(folder)


def write_checksums(folder: Path) -> None:
    """Record the sha256 of every file of ``folder`` (but itself) in ``checksums.json``."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != CHECKSUMS
                   and not p.name.startswith("."))
    write_json(folder / CHECKSUMS, {"format": CHECKSUMS_FORMAT,
                                    "sha256": {p.name: sha256_file(p) for p in files}})


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: damaged, not valid JSON ({one_line(exc)})") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({one_line(exc)})") from None


def verify_checksums(folder: Path, names: Iterable[str]) -> None:
    """Check the sha256 of each of ``names`` in ``folder`` against ``checksums.json``.

    No checksums.json (a folder written before checksums were recorded): one warning.
    """
    names = list(names)
    for name in names:
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder / name}: missing (an incomplete model/checkpoint folder)")
    path = folder / CHECKSUMS
    if not path.is_file():
        warnings.warn(f"{folder}: no {CHECKSUMS} (written before anchorudf recorded checksums): "
                      f"{', '.join(names)} not verified against damage", stacklevel=3)
        return
    record = read_json(path)
    sums = record.get("sha256") if isinstance(record, dict) else None
    if not isinstance(sums, dict) or record.get("format") != CHECKSUMS_FORMAT:
        raise CheckpointError(f"{path}: damaged, not an anchorudf checksums file")
    for name in names:
        if name not in sums:
            raise CheckpointError(f"{folder / name}: no checksum recorded in {path}")
        actual = sha256_file(folder / name)
        if actual != sums[name]:
            raise CheckpointError(f"{folder / name}: damaged: sha256 {actual[:16]} does not match "
                                  f"{str(sums[name])[:16]} recorded in {CHECKSUMS} when it was written")


def read_meta(folder: Path) -> dict[str, Any]:
    """config.json of a model folder, parsed but not verified (CheckpointError when it is not one)."""
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (not a model folder, or an incomplete one)")
    meta = read_json(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{path}: not an anchorudf model config (format {got!r})")
    return meta


def verify_folder(folder: Path, names: Iterable[str] = MODEL_FILES) -> dict[str, Any]:
    """Check that ``names`` are in ``folder`` with their recorded checksums; return config.json."""
    verify_checksums(folder, names)
    return read_meta(folder)


def _check_state(path: Path, state: dict, metadata: dict, model: AnchorUDF, source: str) -> None:
    """Names, shapes, recorded configuration and values of ``state`` against ``model``."""
    import torch

    expected = model.state_dict()
    for name, want in expected.items():
        if name not in state:
            raise CheckpointError(f"{path}: no tensor {name}, which the model of {source} needs "
                                  "(the config does not fit these weights)")
        if tuple(state[name].shape) != tuple(want.shape):
            raise CheckpointError(f"{path}: tensor {name} has shape {tuple(state[name].shape)}, the model "
                                  f"of {source} needs shape {tuple(want.shape)} (the config does not "
                                  "fit these weights)")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise CheckpointError(f"{path}: tensor {extra[0]} is not in the model of {source} "
                              "(the config does not fit these weights)")
    recorded = {"image_size": metadata.get(f"{_META}image_size"),
                "anchor_count": metadata.get(f"{_META}anchor_count")}
    for key, value in recorded.items():
        if value is not None and str(getattr(model, key)) != value:
            raise CheckpointError(f"{source}: {key} {getattr(model, key)} does not fit {path} "
                                  f"(the weights were made for {key} {value})")
    cfg = metadata.get(f"{_META}model")
    if cfg is not None:
        have = dataclasses.asdict(model.cfg)
        try:
            made = json.loads(cfg)
        except json.JSONDecodeError:
            raise CheckpointError(f"{path}: damaged model config in the safetensors metadata") from None
        # Keys of both only: a field added to (or dropped from) the schema later is no mismatch.
        diff = sorted(k for k in set(have) & set(made) if have[k] != made[k])
        if diff:
            k = diff[0]
            raise CheckpointError(f"{source}: model.{k} {have[k]!r} does not fit {path} "
                                  f"(the weights were made for model.{k} {made[k]!r})")
    for name in sorted(state):
        t = state[name]
        if not t.is_floating_point() or t.numel() == 0:
            continue
        if not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: tensor {name} holds non-finite values (NaN/inf): "
                                  "the weights are damaged")
        peak = float(t.abs().max())
        if peak > MAX_ABS_WEIGHT:
            raise CheckpointError(f"{path}: tensor {name} holds {peak:.3g}, far beyond any trained "
                                  f"weight (> {MAX_ABS_WEIGHT:g}): the weights are damaged")


def load_weights(folder: Path, model: AnchorUDF, device: str | torch.device = "cpu",
                 source: str | None = None) -> None:
    """Load ``folder/model.safetensors`` into ``model`` after checking that every tensor fits
    (names, shapes, the recorded image_size/anchor_count/model config, finite values).

    ``source`` names where ``model``'s configuration came from (default: the folder's
    config.json), for the error messages. Checksums are :func:`verify_folder`'s job. The
    tensors are read and checked on the CPU, then copied into ``model``'s parameters
    (wherever they are; ``device`` is kept for the callers' signature).
    """
    from safetensors import SafetensorError, safe_open

    path = folder / "model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (an incomplete model/checkpoint folder)")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: damaged, not a readable safetensors file ({one_line(exc)})") from None
    _check_state(path, state, metadata, model, source or str(folder / "config.json"))
    model.load_state_dict(state)


#: Model keys added after checkpoints had been written (the weights shipped until 2026-12-06 among them), with
#: the value that rebuilds such a checkpoint's model: the feature off. A config.json without
#: one of them is read with this value, not with today's default.
MODEL_KEYS_ADDED = {"silhouette_input": False, "depth_head": False, "depth_input": False, "depth_abs": False}


def load_model(path: str | Path, device: str = "cpu") -> tuple[AnchorUDF, dict[str, Any]]:
    """Rebuild an AnchorUDF from a model or checkpoint folder (or its model.safetensors).

    Returns ``(model, meta)``: the model in eval mode on ``device``, and config.json's
    content (model config, anchor_count, image_size, step, params). Raises
    FileNotFoundError when there is no such folder and :class:`CheckpointError` (one line,
    naming the file) when it is incomplete, damaged or does not fit its config.
    """
    from anchorudf.models.anchorudf import AnchorUDF

    path = Path(path)
    folder = path.parent if path.is_file() else path
    if not folder.is_dir():
        raise FileNotFoundError(f"{path}: no such model folder")
    meta = verify_folder(folder, MODEL_FILES)
    config = folder / "config.json"
    try:
        # render.size = the input size, so the model config is validated against it
        # (model.coarse_size, the depths).
        size = int(meta["image_size"])
        model_cfg = {**MODEL_KEYS_ADDED, **meta["model"]}
        cfg = params_from_dict({"model": model_cfg, "render": {"size": size}}).model
        model = AnchorUDF(cfg, int(meta["anchor_count"]), size)
    except ConfigError as exc:
        raise CheckpointError(f"{config}: not a valid model config ({exc})") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{config}: not a valid model config ({one_line(exc)})") from None
    load_weights(folder, model, device, source=str(config))
    model.to(device).eval()
    return model, meta


#: Model config keys of the fine level only: a coarse model lacks them (or has them off).
HD_KEYS = ("hd_enabled", "hd_channels", "hd_depth", "hd_decoder")
#: Prefixes of the fine level's tensors in an HD model's state dict.
HD_PREFIXES = ("hd_encoder.", "hd_decoder.")


def load_coarse_weights(path: str | Path, model: AnchorUDF) -> dict[str, Any]:
    """Load a coarse (AnchorUDF, not HD) model or checkpoint folder into the coarse level of
    the HD model ``model``; the fine level keeps its (fresh) weights.

    This is the one explicit way to load weights that do not fit a model exactly; the
    general check (:func:`load_weights`) stays strict. The folder is verified as a model of
    its own (:func:`load_model`: checksums, tensors against its own config), then it must
    fit ``model``'s coarse level: the same model config on every key but the ``hd_*``
    ones, the same anchor count and the same coarse input side (``model.coarse_size``, or
    the image size of a model without one: a coarse model trained on 512 px renders fits
    an HD model reading 1024 px renders with coarse_size 512, as in the paper). Its
    tensors must be exactly the HD model's non-fine tensors. Returns its config.json.
    """
    if not model.hd:
        raise CheckpointError(f"{path}: load_coarse_weights loads into an HD model (model.hd_enabled); "
                              "this model has no fine level: use load_model / load_weights")
    coarse, meta = load_model(path, device="cpu")
    source = Path(path)
    if coarse.hd:
        raise CheckpointError(f"{source}: already an AnchorUDF-HD model (model.hd_enabled), not a coarse one")
    have, made = dataclasses.asdict(model.cfg), dataclasses.asdict(coarse.cfg)
    for key in sorted(set(have) & set(made) - set(HD_KEYS) - {"coarse_size"}):
        if have[key] != made[key]:
            raise CheckpointError(f"{source}: made for model.{key} {made[key]!r}, the HD model has "
                                  f"model.{key} {have[key]!r}: not its coarse level")
    if coarse.coarse_size != model.coarse_size:
        raise CheckpointError(f"{source}: its coarse level reads {coarse.coarse_size} px images, the HD "
                              f"model's reads {model.coarse_size} px (model.coarse_size)")
    if coarse.anchor_count != model.anchor_count:
        raise CheckpointError(f"{source}: made for {coarse.anchor_count} anchors, the HD model has "
                              f"{model.anchor_count}")
    state = coarse.state_dict()
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(HD_PREFIXES)}
    if set(own) != set(state) or any(tuple(own[k].shape) != tuple(state[k].shape) for k in own):
        odd = sorted(set(own) ^ set(state)) or [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
        raise CheckpointError(f"{source}: tensor {odd[0]} does not fit the HD model's coarse level")
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith(HD_PREFIXES) for k in missing), (missing, unexpected)
    return meta
