"""Typed configuration: one dataclass per section of ``params.yaml``, loaded strictly.

Every field carries a one-line ``doc`` and, where it matters, a range (``lo``/``hi``) or a
set of ``choices``. :func:`load_params` rejects unknown keys, wrong types and out-of-range
values with a message naming the key (``train.lr: ...``), so a typo in an override fails
loudly instead of silently training with the default.

Overrides use DVC's syntax (``section.key=value``, the value parsed as YAML), so
``anchorudf train -S train.lambda_gda=0.02`` means the same as
``dvc exp run -S train.lambda_gda=0.02``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from anchorudf.errors import AnchorUDFError

_SCI = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

CATEGORIES = ("tshirt", "longsleeve", "longcoat", "trousers", "shorts", "skirt")
#: Categories the default generator can make: the six of the default set, plus cuts it
#: does not include unless ``garments.categories`` lists them (dresses; vests: open front;
#: capes: ponchos, one sheet over the shoulders).
GENERATOR_CATEGORIES = CATEGORIES + ("dress", "vest", "cape", "hoodie")
#: Up axes of user meshes (``garments.up_axis``); a missing sign means "+", case is ignored.
UP_AXES = ("+X", "-X", "+Y", "-Y", "+Z", "-Z")


class ConfigError(ValueError, AnchorUDFError):
    """A params file or override that does not fit the schema; the message names the key."""


def _f(default: Any, doc: str, lo: float | None = None, hi: float | None = None,
       choices: tuple | None = None, gt: float | None = None, nonempty: bool = False):
    """A documented field: ``lo``/``hi`` inclusive bounds, ``gt`` an exclusive lower bound
    (each applies to every item of a list), ``nonempty`` for lists that need an item."""
    meta = {"doc": doc, "lo": lo, "hi": hi, "choices": choices, "gt": gt, "nonempty": nonempty}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: list(d) if isinstance(d, list) else dict(d),
                     metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class GarmentsConfig:
    """Stage 1: where garments come from, how many, how they are split."""

    source: Literal["default", "generic", "mgn", "df3d"] = _f(
        "default", "default = the embedded anny garment set; generic/mgn/df3d = a user dataset at `input`")
    input: str = _f("", "folder of a user dataset (ignored for source=default)")
    up_axis: str = _f("+Y", "up axis of the user meshes, rotated to +Y: +X, -X, +Y, -Y, +Z or -Z "
                      "(ignored for source=default)")
    seed: int = _f(0, "seed of the default garment generator and of the split", lo=0)
    count: int = _f(180, "number of generated garments (source=default), split into train/test by body",
                    lo=1, hi=100000)
    shifted_count: int = _f(12, "extra style-shifted test garments (source=default): split `shifted`, "
                            "poses, lengths and fits outside the training ranges, untextured grey; "
                            "evaluated beside the test split, never trained on", lo=0, hi=100000)
    extra_train: int = _f(0, "extra training garments (source=default) on bodies of their own, from the "
                          "same ranges as `count`'s, after the shifted ones: a wider training world with "
                          "the same test and shifted garments", lo=0, hi=100000)
    extra_categories: list[str] = _f([], "categories of the `extra_train` garments, round-robin (source=default); "
                                         "empty = `categories`. E.g. the six plus dress, vest, cape, hoodie: "
                                         "a training world with cuts the test and shifted sets do not have")
    categories: list[str] = _f(list(CATEGORIES), "categories to generate (default; also dress, vest, cape, hoodie) "
                                                 "or keep (user data)",
                               nonempty=True)
    test_fraction: float = _f(0.1, "fraction of bodies/subjects/instances held out for test", lo=0.0, hi=0.9)
    strict: bool = _f(False, "fail the run when any input file is rejected")
    anny_cache: str = _f(".cache/anny", "project-local cache of the anny body model build")
    workers: int = _f(2, "processes generating the default set (outputs do not depend on it)", lo=1, hi=256)


@dataclass(frozen=True)
class RenderConfig:
    """Stage 2: offscreen orthographic views of every garment."""

    seed: int = _f(0, "seed of the per-view random lights", lo=0)
    size: int = _f(128, "image side in pixels (512 in the paper)", lo=16, hi=4096)
    yaw_step: float = _f(30.0, "degrees between views over 360; 0 = use `yaws`", lo=0.0, hi=360.0)
    yaws: list[float] = _f([], "explicit yaw list in degrees (used when yaw_step is 0)")
    test_yaws: list[float] = _f([0.0, 40.0, 320.0], "yaws of the test views (always rendered)", nonempty=True)
    fill: float = _f(0.88, "fraction of the image the garment's larger of height/width fills", lo=0.1, hi=1.0)
    background: list[int] = _f([255, 255, 255], "RGB background of the images (mask is separate)")
    image_format: Literal["png", "jpg"] = _f("png", "image file format")
    jpeg_quality: int = _f(95, "JPEG quality when image_format is jpg", lo=1, hi=100)
    backend: Literal["auto", "osmesa", "egl"] = _f("auto", "OpenGL platform; auto = EGL with a GPU, else OSMesa")
    shards: list[int] = _f([0, 1], "shard ids (0..n-1); garment i goes to shard i % n", nonempty=True)
    workers: int = _f(2, "processes per shard (outputs do not depend on it)", lo=1, hi=256)


@dataclass(frozen=True)
class SampleConfig:
    """Stage 3a: query points with exact unsigned distance targets."""

    seed: int = _f(0, "seed of the query point sampler", lo=0)
    points_per_garment: int = _f(100000, "query points stored per garment", lo=100)
    sigmas: list[float] = _f([0.08, 0.02, 0.003], "std-devs of the Gaussian offsets (normalised frame)")
    ratios: list[float] = _f([0.01, 0.49, 0.50], "share of the near-surface points per sigma")
    uniform_ratio: float = _f(0.25, "share of points uniform in the padded box (0 in the paper)", lo=0.0, hi=1.0)
    shards: list[int] = _f([0, 1], "shard ids (0..n-1); garment i goes to shard i % n", nonempty=True)
    workers: int = _f(2, "processes per shard (outputs do not depend on it)", lo=1, hi=256)


@dataclass(frozen=True)
class AnchorsConfig:
    """Stage 3b: k-means anchor targets and evaluation surface samples."""

    seed: int = _f(0, "seed of surface sampling and k-means", lo=0)
    count: int = _f(300, "number of anchors (600 in the paper; 100/300/900 in its Table 1)", lo=1, hi=10000)
    surface_samples: int = _f(20000, "surface samples clustered by k-means (100k in the paper)", lo=10)
    method: Literal["kmeans", "minibatch"] = _f("kmeans", "scikit-learn KMeans or MiniBatchKMeans")


@dataclass(frozen=True)
class ModelConfig:
    """The AnchorUDF network."""

    stacks: int = _f(1, "hourglass stacks (5 in the paper)", lo=1, hi=8)
    depth: int = _f(2, "hourglass depth, downsamplings per hourglass (4 in the paper)", lo=1, hi=6)
    channels: int = _f(64, "encoder feature channels (256 in the paper)", lo=4, hi=1024)
    norm: Literal["group", "batch"] = _f("group", "normalisation layer of the encoder")
    grid: int = _f(16, "side of the anchor occupancy grid (32 in the paper)", lo=4, hi=128)
    pos_channels: int = _f(32, "channels of the anchored position feature", lo=1, hi=256)
    pos_levels: int = _f(2, "poolings of the position CNN (0: five full-resolution convs, an 11-voxel "
                            "receptive field; 2: a 3D U-Net down to grid/4 that sees the whole grid)", lo=0, hi=4)
    decoder: list[int] = _f([128, 128, 64], "hidden widths of the decoder MLP (1024-512-256-128 in the paper)",
                            lo=1, nonempty=True)
    position_feature: Literal["anchors", "xyz", "depth"] = _f(
        "anchors", "anchors = AnchorUDF; xyz = coordinates only; depth = PIFu's depth (Table 2)")
    output: Literal["softplus", "abs", "relu"] = _f("softplus", "output activation keeping distances >= 0")
    silhouette_input: bool = _f(False, "give the coarse image encoder two more input channels: the mask and each "
                                       "pixel's distance to the silhouette's edge (NDC), a depth prior")
    depth_head: bool = _f(True, "a 1x1 head on every stack's feature map predicting, per feature cell, the NDC "
                                 "depth of the nearest and farthest garment surface (trained with train.lambda_depth)")
    depth_input: bool = _f(True, "also give the decoder the depth heads' two predictions at the query's pixel "
                                  "(beside its z: the offsets to the nearest and farthest surface); needs depth_head")
    depth_abs: bool = _f(False, "also give the decoder abs(z - near) and abs(z - far) of the depth heads' "
                                 "predictions at the query's pixel: a V with its tip at each predicted surface; "
                                 "needs depth_input")
    coarse_size: int = _f(0, "side of the coarse network's input in px, area-downsampled from the render "
                             "(render.size must be a multiple); 0 = render.size (512 in the paper)", lo=0, hi=4096)
    hd_enabled: bool = _f(False, "AnchorUDF-HD (paper 4.4): add PIFuHD's fine level, reading the full "
                                 "render.size image (1024 in the paper); trained in the train.hd_steps phase")
    hd_channels: int = _f(16, "channels of the fine image encoder (16 in PIFuHD)", lo=4, hi=1024)
    hd_depth: int = _f(2, "hourglass depth of the fine image encoder (one stack at render.size / 2)", lo=1, hi=6)
    hd_decoder: list[int] = _f([64, 32], "hidden widths of the fine decoder MLP (512-256-128 in PIFuHD)",
                               lo=1, nonempty=True)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of the model."""

    seed: int = _f(0, "seed of initialisation, data order, point draws and augmentation", lo=0)
    device: Literal["auto", "cpu", "cuda"] = _f("auto", "auto = CUDA when present, else CPU")
    steps: int = _f(4800, "optimisation steps of the main phase", lo=0)
    gda_steps: int = _f(600, "final steps with L_gda, encoders frozen (paper: last 10 epochs)", lo=0)
    hd_steps: int = _f(600, "steps of the HD phase after steps + gda_steps, L_udf + L_gda on the fine "
                            "output (model.hd_enabled only; paper: 15 epochs)", lo=0)
    hd_train: Literal["all", "fine"] = _f("all", "HD phase trains: all = the whole model (the paper; the coarse "
                                                 "losses stay on), fine = the fine level only (coarse frozen)")
    batch_size: int = _f(4, "items (garment views) per step", lo=1)
    points: int = _f(4000, "query points per item (5000 in the paper)", lo=1)
    sigma_mix: list[float] = _f([0.15, 0.15, 0.35, 0.35],
                                "per-batch shares of [uniform, sigma_0, sigma_1, ...] points")
    optimizer: Literal["rmsprop", "adam"] = _f("rmsprop", "optimizer")
    lr: float = _f(5e-4, "learning rate (5e-5 in the paper)", gt=0.0, hi=1.0)
    lr_decay_at: float = _f(0.8, "fraction of all steps after which lr is multiplied by lr_decay", lo=0.0, hi=1.0)
    lr_decay: float = _f(0.1, "lr multiplier for the last steps", gt=0.0, hi=1.0)
    warmup: int = _f(0, "steps of linear lr warm-up at the start of the run (and of the HD phase): "
                        "step k < warmup trains at lr x (k + 1) / (warmup + 1); 0 = off", lo=0)
    grad_clip: float = _f(0.0, "clip the gradient's global norm to this before each update; 0 = off", lo=0.0)
    delta: float = _f(0.2, "clamp of the distance loss, NDC units", gt=0.0)
    udf_clamp: Literal["both", "target"] = _f("both", "both = |min(f, delta) - min(udf, delta)| (the paper; "
                                              "a prediction above delta gets no gradient, so a field pushed "
                                              "above it everywhere stays dead); target = no dead zone: |f - udf| "
                                              "where udf < delta, max(delta - f, 0) beyond")
    lambda_ap: float = _f(1.0, "weight of the anchor loss relative to L_udf as in the paper's sums "
                                "(applied to the means as lambda_ap x anchors / points)", lo=0.0)
    lambda_gda: float = _f(0.02, "weight of the gradient-direction-alignment loss", lo=0.0)
    lambda_depth: float = _f(1.0, "weight of the depth head's L1 loss in the main phase (model.depth_head only)",
                             lo=0.0)
    flip: bool = _f(True, "random horizontal flip augmentation")
    scale_jitter: float = _f(0.05, "max relative scale augmentation", lo=0.0, hi=0.5)
    shift_jitter: float = _f(0.05, "max shift augmentation, NDC units", lo=0.0, hi=0.5)
    rotate_jitter: float = _f(0.0, "max in-plane rotation augmentation, degrees (camera roll)", lo=0.0, hi=90.0)
    ema: float = _f(0.0, "decay of an exponential moving average of the weights, updated every step; the "
                         "exported model/ holds the average, model_raw/ the optimizer's weights; 0 = off",
                    lo=0.0, hi=0.99999)
    amp: bool = _f(True, "mixed precision on CUDA (ignored on CPU)")
    ckpt_every: int = _f(500, "checkpoint every N steps", lo=1)
    resume: Literal["auto", "never"] = _f("auto", "auto = continue from the latest checkpoint in the run dir")
    init: str = _f("", "start a new run from these weights: a model folder, or 'shipped' (anchorudf/weights); "
                       "'' = random initialisation (fine-tuning: the same model config and image size)")
    log_every: int = _f(25, "log metrics every N steps", lo=1)
    num_workers: int = _f(0, "data loader worker processes", lo=0)
    threads: int = _f(0, "torch CPU threads; 0 = all cores", lo=0)


@dataclass(frozen=True)
class EvaluateConfig:
    """Reconstruction of the test views and metrics."""

    seed: int = _f(0, "seed of the reconstruction seeds", lo=0)
    gt_points: int = _f(100000, "ground-truth surface samples per garment (1M in the paper)", lo=100)
    seed_points: int = _f(20000, "uniform seeds per round (200k in the paper)", lo=10)
    target_points: int = _f(50000, "dense points to extract (900k in the paper)", lo=10)
    num_steps: int = _f(5, "projection steps per round", lo=1)
    filter_val: float = _f(0.015, "keep points with predicted distance below this, NDC (0.007 in the paper)", gt=0.0)
    reseed_val: float = _f(0.03, "reseed from points with predicted distance below this, NDC", gt=0.0)
    seeding: Literal["uniform", "anchors"] = _f(
        "anchors", "uniform = the paper's NDF seeding; anchors = seeds around the predicted anchors")
    anchor_std: float = _f(0.03, "std of the seeds around each anchor (seeding=anchors), NDC", gt=0.0)
    max_rounds: int = _f(20, "give up after this many rounds", lo=1)
    batch_points: int = _f(50000, "points per network call (memory budget)", lo=1)
    mesh: bool = _f(True, "also extract a mesh from the UDF")
    mesh_resolution: int = _f(64, "grid cells per axis of the mesh extraction", lo=8, hi=1024)
    mesher: Literal["points", "shell", "meshudf", "auto"] = _f(
        "points", "points = the shell cut of the dense points' own distance field (closest to the points, "
                  "manifold; holes where they are sparse); "
                  "shell = cut the UDF's offset shell into one layer (fewest boundary loops, farther off); "
                  "meshudf = per-cell gradient signs (MeshUDF-style, exact fields); "
                  "auto = shell and meshudf, keep the one closer to the dense points (symmetric Chamfer, no ground truth)")
    mesh_level: float = _f(1.5, "points mesher: level of the dense points' distance field, in cells; "
                                 "gaps up to about twice this wide are bridged (1 = closest mesh, loops right "
                                 "on 18 of 18 exact fields, more holes on a learned one; 1.5 = fewer holes, a "
                                 "tube 3 cells across closes; 2.5 = few holes, bridges some real openings)",
                           gt=0.0)
    mesh_min_faces: int = _f(200, "drop mesh pieces with fewer faces (speckles of a noisy field)", lo=0)
    mesh_fill_holes: int = _f(12, "close boundary loops of at most this many edges (pin holes); 0 = off", lo=0)
    mesh_fill_field: float = _f(1.25, "close boundary loops across which the learned UDF stays below this many "
                                       "cells (above its floor for the points mesher; 90th percentile over a disk "
                                       "on the loop); 0 = off", lo=0.0)
    mesh_fill_radius: float = _f(9.0, "mesh_fill_field closes only holes of at most this mean radius, in cells "
                                      "(a blurry field spans wider openings: necks, hems, waists); 0 = any", lo=0.0)
    mesh_fill_narrow: float = _f(2.0, "mesh_fill_field also closes loops of at most this mean width in cells "
                                       "(twice their area over their length) whatever their radius, when the UDF "
                                       "is low across most of them: slits, such as the seams of the cut into one "
                                       "layer; 0 = off", lo=0.0)
    mesh_recover: int = _f(40, "points mesher: keep whole the pieces of the cloud's shell that the cut into one "
                               "layer drops on both sides (a thin sleeve or leg the field filled), when they have "
                               "at least this many shell vertices; 0 = off", lo=0)
    fscore_threshold: float = _f(0.01, "F-score distance, fraction of garment size", gt=0.0)
    metric_points: int = _f(50000, "points of each cloud used in the metrics", lo=10)
    baselines: bool = _f(True, "also evaluate the retrieval and anchor baselines")
    workers: int = _f(2, "processes on the CPU (each runs torch on one thread: outputs do not depend on it)",
                      lo=1, hi=256)


SECTIONS: dict[str, type] = {
    "garments": GarmentsConfig,
    "render": RenderConfig,
    "sample": SampleConfig,
    "anchors": AnchorsConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
}


@dataclass(frozen=True)
class Params:
    """All sections of ``params.yaml``."""

    garments: GarmentsConfig = field(default_factory=GarmentsConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    anchors: AnchorsConfig = field(default_factory=AnchorsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}


def _check_value(key: str, value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if origin in (list, tuple):
        (item_tp,) = typing.get_args(tp)[:1]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        return [_check_value(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{key}: union types are not supported in the schema")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _SCI.fullmatch(value.strip()):
            # YAML 1.1 (PyYAML, and DVC's -S) reads "5e-5" as a string: accept the number.
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: {value!r} is not a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported schema type {tp}")


def _build_section(name: str, cls: type, raw: Any) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: expected a mapping of keys, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]}: unknown key (known: {', '.join(sorted(fields))})")
    values = {}
    for key, value in raw.items():
        full = f"{name}.{key}"
        value = _check_value(full, value, hints[key])
        meta = fields[key].metadata
        lo, hi, gt = meta.get("lo"), meta.get("hi"), meta.get("gt")
        if meta.get("nonempty") and isinstance(value, list) and not value:
            raise ConfigError(f"{full}: must list at least one value")
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if lo is not None and v < lo:
                    raise ConfigError(f"{full}: {v!r} is below the minimum {lo}")
                if gt is not None and v <= gt:
                    raise ConfigError(f"{full}: {v!r} must be above {gt}")
                if hi is not None and v > hi:
                    raise ConfigError(f"{full}: {v!r} is above the maximum {hi}")
        values[key] = value
    return cls(**values)


def _validate(p: Params) -> None:
    """Cross-field rules the per-field schema cannot express."""
    if p.train.steps + p.train.gda_steps < 1:
        raise ConfigError("train.steps: train.steps + train.gda_steps must be at least 1 "
                          "(a run of 0 steps would export an untrained model)")
    if p.model.depth_input and not p.model.depth_head:
        raise ConfigError("model.depth_input: needs model.depth_head (the decoder reads the depth heads' output); "
                          "for a model without depth heads set both false")
    if p.model.depth_abs and not p.model.depth_input:
        raise ConfigError("model.depth_abs: needs model.depth_input (it is made from the depth the decoder reads)")
    # The encoder's 4x stem, then model.depth halvings (models.hourglass.bottleneck_side).
    coarse = p.model.coarse_size or p.render.size
    if p.render.size % coarse:
        raise ConfigError(f"model.coarse_size: {coarse} must divide render.size {p.render.size} "
                          "(the coarse input is the render area-downsampled by a whole factor)")
    side = ((coarse + 1) // 2) // 2 // 2 ** p.model.depth
    if side < 1:
        what = "render.size" if not p.model.coarse_size else "model.coarse_size"
        raise ConfigError(f"model.depth: {p.model.depth} downsamplings need {what} >= "
                          f"{4 * 2 ** p.model.depth}, got {coarse}")
    if p.model.hd_enabled and ((p.render.size + 1) // 2) // 2 ** p.model.hd_depth < 1:
        raise ConfigError(f"model.hd_depth: {p.model.hd_depth} downsamplings of the fine level need "
                          f"render.size >= {2 ** (p.model.hd_depth + 1)}, got {p.render.size}")
    if p.model.hd_enabled and p.train.hd_steps < 1:
        raise ConfigError("train.hd_steps: model.hd_enabled needs at least one HD step "
                          "(an untrained fine level would make every prediction)")
    for name in ("sample", "render"):
        shards = getattr(p, name).shards
        if sorted(shards) != list(range(len(shards))):
            raise ConfigError(f"{name}.shards: must be the ids 0..n-1, got {shards}")
    s = p.sample
    if len(s.sigmas) != len(s.ratios) or not s.sigmas:
        raise ConfigError("sample.ratios: needs one ratio per entry of sample.sigmas")
    if any(v <= 0 for v in s.sigmas):
        raise ConfigError("sample.sigmas: every sigma must be positive")
    if abs(sum(s.ratios) - 1.0) > 1e-6 or any(r < 0 for r in s.ratios):
        raise ConfigError(f"sample.ratios: must be >= 0 and sum to 1, got {s.ratios}")
    mix = p.train.sigma_mix
    if len(mix) != len(s.sigmas) + 1:
        raise ConfigError(f"train.sigma_mix: needs {len(s.sigmas) + 1} shares ([uniform] + one per sample.sigmas)")
    if any(v < 0 for v in mix) or sum(mix) <= 0:
        raise ConfigError(f"train.sigma_mix: shares must be >= 0 with a positive sum, got {mix}")
    if mix[0] > 0 and s.uniform_ratio == 0:
        raise ConfigError("train.sigma_mix: asks for uniform points but sample.uniform_ratio is 0")
    for key in ("categories", "extra_categories"):
        bad = [c for c in getattr(p.garments, key) if p.garments.source == "default" and c not in GENERATOR_CATEGORIES]
        if bad:
            raise ConfigError(f"garments.{key}: unknown category {bad[0]!r} "
                              f"(known: {', '.join(GENERATOR_CATEGORIES)})")
    if p.render.yaw_step == 0 and not p.render.yaws:
        raise ConfigError("render.yaws: must list yaws when render.yaw_step is 0")
    if len(p.render.background) != 3 or any(not 0 <= c <= 255 for c in p.render.background):
        raise ConfigError("render.background: must be three integers in [0, 255]")
    axis = p.garments.up_axis.strip().upper()
    if ("+" + axis if len(axis) == 1 else axis) not in UP_AXES:
        raise ConfigError(f"garments.up_axis: {p.garments.up_axis!r} is not one of {list(UP_AXES)} "
                          "(a missing sign means +, case is ignored)")
    if p.garments.source != "default" and not p.garments.input:
        raise ConfigError(f"garments.input: required when garments.source is {p.garments.source!r}")


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse ``section.key=value`` (value as YAML, like ``dvc exp run -S``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected section.key=value")
    path, raw = text.split("=", 1)
    parts = path.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"override {text!r}: key must be section.key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: cannot parse value {raw!r}: {exc}") from None
    return parts[0], parts[1], value


def params_from_dict(raw: dict[str, Any]) -> Params:
    """Build and validate :class:`Params` from a plain mapping (e.g. a loaded YAML file)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("params: the top level must be a mapping of sections")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section (known: {', '.join(SECTIONS)})")
    p = Params(**{name: _build_section(name, cls, raw.get(name)) for name, cls in SECTIONS.items()})
    _validate(p)
    return p


def load_params(path: str | Path | None = "params.yaml", overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Load ``params.yaml`` strictly, apply ``section.key=value`` overrides, validate.

    ``path=None`` starts from the built-in defaults. Raises :class:`ConfigError` naming the
    offending key for unknown keys, wrong types and out-of-range values.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: params file not found")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if raw is None:
            raise ConfigError(f"{path}: empty params file (list at least one section, "
                              "or remove the file to use the built-in defaults)")
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for text in overrides:
        section, key, value = parse_override(text)
        if section not in SECTIONS:
            raise ConfigError(f"{section}.{key}: unknown section (known: {', '.join(SECTIONS)})")
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raw[section] = {}
        raw[section][key] = value
    return params_from_dict(raw)


def dump_params(p: Params) -> str:
    """The resolved params as YAML text (stored in checkpoints and manifests)."""
    return yaml.safe_dump(p.to_dict(), sort_keys=False)


def field_docs() -> list[tuple[str, Any, str]]:
    """(key, default, doc) for every field: the source of the README's params reference."""
    rows = []
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((f"{name}.{f.name}", default, f.metadata.get("doc", "")))
    return rows


def params_reference() -> str:
    """The params reference as a Markdown table (the README embeds it; a test compares)."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, doc in field_docs():
        shown = yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("...").strip()
        lines.append(f"| `{key}` | `{shown}` | {doc} |")
    return "\n".join(lines)
