"""Generic AnchorUDF trainer: ``train_step(batch) -> dict`` / ``eval_step(batch) -> dict``.

Schedule (``params.train``): ``steps`` main steps (L_udf averaged over stacks +
lambda_ap * L_ap), then ``gda_steps`` fine-tuning steps with the encoders (image encoder,
anchor head, position CNN) frozen and L_gda added at lambda_gda on the last stack (the
one used at inference); lr x lr_decay from ``round(lr_decay_at * total)`` on (after a linear
warm-up over the first ``warmup`` steps when set; ``grad_clip`` caps the gradient norm). A "step" is
one optimiser update on ``batch_size`` items (the global batch, split over processes).

AnchorUDF-HD (``model.hd_enabled``, paper section 4.4): ``hd_steps`` more steps follow
(phase "hd"), training the fine level on L_udf + lambda_gda * L_gda of its output, with
the whole model (``hd_train: all``, the paper's "continue to train the entire model"; the
coarse losses stay on) or the fine level alone (``fine``). The fine level is frozen before.
The HD phase restarts the lr schedule (``lr``, x ``lr_decay`` after ``lr_decay_at`` of it):
its fine level starts from scratch. A coarse run in the run dir (same params but the HD
ones) is continued as the HD run (see :func:`anchorudf.train.resume.resume`).

Reproducibility: the data order and every item's random draw are functions of
(seed, step) (see ``anchorudf.train.sampler``), torch's RNG is reseeded from (seed, step)
before every step, and checkpoints hold weights + optimizer state, so a run resumed
from step k ends with the weights of an uninterrupted run (bitwise on CPU).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from anchorudf.config import Params, TrainConfig
from anchorudf.train.distributed import (DistInfo, barrier, check_same_weights, init_distributed,
                                         mean_across, shutdown)
from anchorudf.train.resume import init_weights, resume
from anchorudf.train.schedule import lr_at, phase_at, step_seed, total_steps
from anchorudf.utils.device import resolve_device_type

if TYPE_CHECKING:  # torch is imported inside the functions (fast CLI start-up)
    import torch
    from torch.utils.data import Dataset

    from anchorudf.models.anchorudf import AnchorUDF

BATCH_KEYS = ("image", "points", "udf", "direction", "anchors")
#: Batch keys of models with a depth head (model.depth_head; anchorudf.train.depth).
DEPTH_KEYS = ("depth", "depth_covered")


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig,
                   foreach: bool = True) -> torch.optim.Optimizer:
    """``train.optimizer`` at ``train.lr``. ``foreach``: one grouped update over all
    parameters instead of a Python loop of small ops per tensor (torch's default on CUDA,
    not on the CPU); the same arithmetic, bit for bit (tests/test_trainer.py), a few ms
    less per CPU step. ``False`` is the per-tensor loop (the benchmark's first version)."""
    import torch

    kind = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.RMSprop
    return kind(params, lr=cfg.lr, foreach=foreach)


class Trainer:
    """Owns the model, its (DDP) wrapper, the optimizer and the AMP state."""

    def __init__(self, model: AnchorUDF, cfg: TrainConfig, device: torch.device, dist: DistInfo = DistInfo()) -> None:
        import torch

        self.cfg, self.device, self.dist = cfg, device, dist
        self.model = model.to(device)
        self.optimizer = make_optimizer(self.model.parameters(), cfg)
        cuda_amp = device.type == "cuda" and cfg.amp
        self.amp_dtype = None
        if cuda_amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        # bf16 has float32's range: only fp16 needs loss scaling.
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.phase: str | None = None
        self.net = self.model
        self.step = 0
        #: Exponential moving average of the weights (train.ema > 0): torch's AveragedModel,
        #: updated after every optimiser step (its first update copies the weights).
        self.ema = None
        if cfg.ema > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
        self.prepare(0)

    # -- state -------------------------------------------------------------------------
    def set_phase(self, phase: str) -> None:
        if phase == self.phase:
            return
        self.model.set_train_phase(phase, self.cfg.hd_train)
        self.phase = phase
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # A new wrapper registers exactly the parameters that now require grad.
            self.net = self.model
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DDP(self.model, device_ids=ids)

    def prepare(self, step: int) -> None:
        """Set phase, lr and torch's RNG for 0-based ``step``."""
        import torch

        self.step = step
        self.set_phase(phase_at(self.cfg, step))
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.cfg, step)
        torch.manual_seed(step_seed(self.cfg.seed, step))

    def extra_state(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.scaler is not None:
            extra["scaler"] = self.scaler.state_dict()
        if self.ema is not None:
            extra["ema"] = self.ema.state_dict()
        return extra

    def load_extra_state(self, extra: dict[str, Any], source: str = "checkpoint", coarse: bool = False) -> None:
        """Restore what :meth:`extra_state` saved. ``coarse``: the state is a coarse run's,
        continued as an HD model: the average's coarse weights are restored, its fine ones
        start from the model's (as the optimizer's fine state starts empty)."""
        if self.scaler is not None and "scaler" in extra:
            self.scaler.load_state_dict(extra["scaler"])
        if self.ema is None:
            return
        from anchorudf.errors import CheckpointError

        state = extra.get("ema")
        if not isinstance(state, dict):
            raise CheckpointError(f"{source}: holds no weight average, but train.ema is {self.cfg.ema}")
        try:
            if coarse:
                own = self.ema.state_dict()
                unknown = sorted(set(state) - set(own))
                if unknown:
                    raise KeyError(f"unexpected {unknown[:3]}")
                own.update(state)
                state = own
            self.ema.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{source}: its weight average does not fit the model ({exc})") from None

    def final_model(self) -> AnchorUDF:
        """The model training exports as ``model/``: the weight average (train.ema), else
        the optimizer's weights."""
        return self.ema.module if self.ema is not None else self.model

    # -- steps -------------------------------------------------------------------------
    def _to_device(self, batch: dict) -> dict:
        keys = BATCH_KEYS + (DEPTH_KEYS if self.model.depth_heads is not None else ())
        missing = [k for k in keys if k not in batch]
        if missing:
            raise KeyError(f"training batch lacks {missing} (has {sorted(batch)})")
        return {k: batch[k].to(self.device, non_blocking=True).float() for k in keys}

    def _autocast(self):
        import torch

        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype or torch.bfloat16,
                              enabled=self.amp_dtype is not None)

    def compute_losses(self, batch: dict):
        """Forward + losses of the current phase: (loss tensor, {name: float tensor}).

        Main phase: L_udf averaged over every stack (deep supervision) + the anchor loss.
        GDA phase (encoders frozen): L_udf of the last stack only (the earlier stacks'
        features no longer change, so fitting the shared decoder to them only competes
        with the stack used at inference) + lambda_gda * L_gda.
        HD phase: L_udf of the fine output + lambda_gda * L_gda on it, plus (hd_train all)
        the main phase's coarse losses.
        """
        from anchorudf.train.losses import anchor_chamfer, gda_loss, udf_loss

        cfg, b = self.cfg, self._to_device(batch)
        if self.phase == "hd":
            return self._hd_losses(b)
        main = self.phase == "main"
        gda_on = not main and cfg.lambda_gda > 0
        with self._autocast():
            out = self.net(b["image"], b["points"], with_grad=gda_on, last_only=not main, fine=False)
        l_udf = sum(udf_loss(u, b["udf"], cfg.delta, cfg.udf_clamp) for u in out["udf"]) / len(out["udf"])
        l_ap = anchor_chamfer(out["anchors"], b["anchors"])
        # lambda_ap * L_ap stays in the graph even at lambda_ap = 0 so DDP sees every
        # parameter used; in the GDA phase the anchor head is frozen and L_ap is only logged.
        loss = l_udf + self.ap_weight(b["anchors"].shape[1], b["points"].shape[1]) * l_ap if main else l_udf
        metrics = {"udf": l_udf.detach(), "anchor_chamfer": l_ap.detach()}
        loss = self.add_depth_term(out, b, loss, metrics)
        if gda_on:
            mask = out["udf"][-1].detach() < cfg.delta
            l_gda = gda_loss(out["grad"], b["direction"], mask)
            loss = loss + cfg.lambda_gda * l_gda
            metrics["gda"] = l_gda.detach()
        metrics["loss"] = loss.detach()
        return loss, metrics

    def _hd_losses(self, b: dict):
        from anchorudf.train.losses import anchor_chamfer, gda_loss, udf_loss

        cfg = self.cfg
        whole = cfg.hd_train == "all"
        gda_on = cfg.lambda_gda > 0
        with self._autocast():
            out = self.net(b["image"], b["points"], with_grad=gda_on, last_only=not whole, fine=True)
        l_fine = udf_loss(out["udf_fine"], b["udf"], cfg.delta, cfg.udf_clamp)
        l_udf = sum(udf_loss(u, b["udf"], cfg.delta, cfg.udf_clamp) for u in out["udf"]) / len(out["udf"])
        l_ap = anchor_chamfer(out["anchors"], b["anchors"])
        loss = l_fine
        if whole:
            loss = loss + l_udf + self.ap_weight(b["anchors"].shape[1], b["points"].shape[1]) * l_ap
        metrics = {"udf": l_udf.detach(), "anchor_chamfer": l_ap.detach(), "udf_fine": l_fine.detach()}
        loss = self.add_depth_term(out, b, loss, metrics)
        if gda_on:
            mask = out["udf_fine"].detach() < cfg.delta
            l_gda = gda_loss(out["grad"], b["direction"], mask)
            loss = loss + cfg.lambda_gda * l_gda
            metrics["gda"] = l_gda.detach()
        metrics["loss"] = loss.detach()
        return loss, metrics

    def add_depth_term(self, out: dict, b: dict, loss, metrics: dict):
        """``loss`` plus lambda_depth x the depth heads' loss (anchorudf.train.depth),
        averaged over the stacks, when the forward returned depth (a model with depth heads,
        all stacks decoded); logged as ``depth``. The term stays in the graph at weight 0,
        so DDP sees every parameter used."""
        if "depth" not in out:
            return loss
        from anchorudf.train.depth import depth_loss

        l_depth = sum(depth_loss(d, b["depth"], b["depth_covered"]) for d in out["depth"]) / len(out["depth"])
        metrics["depth"] = l_depth.detach()
        return loss + self.cfg.lambda_depth * l_depth

    def ap_weight(self, anchors: int, points: int) -> float:
        """Weight of the mean anchor loss: lambda_ap x K / N.

        The paper sums L_udf over the N query points of an item and L_ap over its K
        anchors; our losses are means, so the paper's relative weight lambda_ap becomes
        lambda_ap x K / N (0.15 at 300 anchors and 2000 points, not 1).
        """
        return self.cfg.lambda_ap * anchors / points

    def train_step(self, batch: dict) -> dict[str, float]:
        """One optimiser update at ``self.step`` (call :meth:`prepare` first); returns metrics."""
        import torch

        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss, metrics = self.compute_losses(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {self.step}: non-finite loss "
                                     f"({ {k: float(v) for k, v in metrics.items()} })")
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if self.cfg.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)  # clip the true gradient, not the scaled one
                metrics["grad_norm"] = self.clip_gradients()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if self.cfg.grad_clip > 0:
                metrics["grad_norm"] = self.clip_gradients()
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        out = {k: float(v) for k, v in metrics.items()}
        out["lr"] = self.optimizer.param_groups[0]["lr"]
        self.step += 1
        return out

    def clip_gradients(self) -> "torch.Tensor":
        """Scale the gradients of the trained parameters to a global norm of at most
        ``train.grad_clip``; returns the norm before clipping. A non-finite gradient is not
        caught here: under fp16 AMP the grad scaler skips that step, otherwise it reaches the
        optimizer as it would without clipping."""
        import torch

        params = [p for p in self.model.parameters() if p.grad is not None]
        return torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip).detach()

    def eval_step(self, batch: dict) -> dict[str, float]:
        """Metrics of the prediction used at inference (the coarse level's last stack, or
        the fine level of HD models) without updating anything (model in eval mode).

        udf: clamped L1 (NDC); udf_near_abs: mean |f - udf| over points with udf < delta;
        anchor_chamfer: squared Chamfer (NDC^2); gda: mean 1 - cos over f < delta.
        """
        import torch

        from anchorudf.train.losses import anchor_chamfer, gda_loss, udf_gradient, udf_loss

        model, cfg, b = self.model, self.cfg, self._to_device(batch)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), self._autocast():
                enc = model.encode(b["image"])
            points = b["points"].detach().requires_grad_(True)
            with torch.enable_grad(), self._autocast():
                f = model.query(enc, points)
            grad = udf_gradient(f, points, create_graph=False)
            f = f.detach().float()
            near = b["udf"] < cfg.delta
            return {"udf": float(udf_loss(f, b["udf"], cfg.delta, cfg.udf_clamp)),
                    "udf_near_abs": float(((f - b["udf"]).abs() * near).sum() / near.sum().clamp_min(1)),
                    "anchor_chamfer": float(anchor_chamfer(enc.anchors.detach(), b["anchors"])),
                    "gda": float(gda_loss(grad, b["direction"], f < cfg.delta))}
        finally:
            model.train(was_training)


def _seed_and_threads(cfg: TrainConfig, device_type: str) -> None:
    import torch

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if device_type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(cfg.seed)  # model initialisation


class _Logger:
    """dvclive (main process only) + a tqdm bar (main process, TTY only)."""

    def __init__(self, live_dir: Path, main: bool, resume: bool, start: int, end: int) -> None:
        from tqdm.auto import tqdm

        self.live = None
        if main:
            from dvclive import Live

            self.live = Live(dir=str(live_dir), resume=resume, save_dvc_exp=False, dvcyaml=None)
        self.bar = tqdm(total=end, initial=start, desc="train", unit="step", disable=None if main else True)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.bar.set_postfix(loss=f"{metrics.get('loss', float('nan')):.4g}")
        if self.live is not None:
            self.live.step = step
            for k, v in sorted(metrics.items()):
                self.live.log_metric(f"train/{k}", v)
            self.live.next_step()

    def close(self, summary: dict[str, float]) -> None:
        self.bar.close()
        if self.live is not None:
            self.live.summary.update({f"final/{k}": v for k, v in summary.items()})
            self.live.end()


def _mean(window: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for m in window for k in m})
    return {k: float(np.mean([m[k] for m in window if k in m])) for k in keys}


def _checkpoint(trainer: Trainer, params: Params, run_dir: Path, dist: DistInfo, step: int) -> None:
    from anchorudf.train.checkpoint import save_checkpoint

    check_same_weights(dist, trainer.model)
    if dist.main:
        save_checkpoint(run_dir, step, trainer.model, trainer.optimizer, params, trainer.extra_state(),
                        phase=phase_at(params.train, step - 1) if step > 0 else None)
    barrier(dist)  # nobody moves on (or exits) before the checkpoint is complete


def run_training(params: Params, dataset: Dataset, run_dir: Path, dist: DistInfo, device_type: str,
                 max_steps: int | None, live_dir: Path | None = None):
    """The loop behind :func:`train`, in an already set-up process group.

    Returns (final metrics, the trained model) on every process.
    """
    import torch
    from torch.utils.data import DataLoader

    from anchorudf.models.anchorudf import AnchorUDF
    from anchorudf.train.checkpoint import export_model
    from anchorudf.train.sampler import StepBatchSampler

    cfg = params.train
    device = torch.device("cuda", dist.local_rank) if device_type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    _seed_and_threads(cfg, device_type)
    trainer = Trainer(AnchorUDF(params.model, params.anchors.count, params.render.size), cfg, device, dist)
    start = resume(trainer, params, run_dir)
    if start == 0 and cfg.init:
        init_weights(trainer.model, cfg.init)
    total = total_steps(params)
    end = total if max_steps is None else min(total, max_steps)
    sampler = StepBatchSampler(len(dataset), cfg.batch_size, cfg.seed, dist.rank, dist.world, start)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.num_workers,
                        pin_memory=device.type == "cuda")
    logger = _Logger(live_dir or run_dir / "dvclive", dist.main, start > 0, start, end)
    window: list[dict[str, float]] = []
    final: dict[str, float] = {}
    step, t0 = start, time.perf_counter()
    try:
        batches = iter(loader) if step < end else iter(())
        while step < end:
            trainer.prepare(step)
            window.append(trainer.train_step(next(batches)))
            step += 1
            logger.bar.update(1)
            if step % cfg.log_every == 0 or step == end:
                final = mean_across(dist, _mean(window), device)
                logger.log(step, final)
                window = []
            if step % cfg.ckpt_every == 0 or step == end:
                _checkpoint(trainer, params, run_dir, dist, step)
        if step == total:
            if dist.main:
                if trainer.ema is not None:
                    export_model(run_dir / "model_raw", trainer.model, params, step)
                export_model(run_dir / "model", trainer.final_model(), params, step)
            barrier(dist)
        final = {**final, "step": float(step),
                 "seconds_per_step": (time.perf_counter() - t0) / max(step - start, 1)}
    finally:
        logger.close(final)
    return final, trainer.final_model()


def train(params: Params, dataset: Dataset, run_dir: Path, *, max_steps: int | None = None,
          live_dir: Path | None = None) -> dict[str, float]:
    """Train AnchorUDF on ``dataset`` (see ``anchorudf.train.sampler`` for its protocol).

    Writes checkpoints (``anchorudf.train.checkpoint``), dvclive logs under ``live_dir``
    (default ``run_dir/dvclive``) and, once all ``steps + gda_steps`` (+ ``hd_steps`` with
    model.hd_enabled) are done, ``run_dir/model``.
    ``max_steps`` stops at that absolute step count (with a checkpoint; a later call with
    train.resume=auto continues). Under torchrun the process group comes from the
    environment. Returns the final metrics: means over the last logging window,
    averaged over processes, plus ``step`` and ``seconds_per_step``.
    """
    device_type = resolve_device_type(params.train.device)
    dist = init_distributed(device_type)
    try:
        return run_training(params, dataset, Path(run_dir), dist, device_type, max_steps,
                            Path(live_dir) if live_dir is not None else None)[0]
    finally:
        shutdown(dist)
