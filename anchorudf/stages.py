"""The pipeline's stages: parse nothing, take resolved :class:`Params`, call the library.

The CLI (``anchorudf <stage>``), ``dvc repro`` (whose ``dvc.yaml`` calls the CLI) and
``anchorudf preprocess`` all run these same functions, so each step has one
implementation.
"""

from __future__ import annotations

import logging
from pathlib import Path

from anchorudf.config import Params
from anchorudf.errors import AnchorUDFError

log = logging.getLogger(__name__)


class StageError(RuntimeError, AnchorUDFError):
    """A stage could not produce its outputs; the message says what and where."""


def garments(p: Params, out: Path, *, report: Path | None = None) -> dict:
    """Stage 1: the garment set into ``out`` (meshes, manifest.csv, rejects.csv).

    ``garments.source == "default"`` generates the embedded anny garment set; otherwise
    the user dataset at ``garments.input`` is ingested in its format, with its up axis
    ``garments.up_axis``.
    """
    from anchorudf.data.manifest import GarmentSetError

    g = p.garments
    out = Path(out)
    try:
        if g.source == "default":
            from anchorudf.data.anny.default_set import build_default_set

            summary = build_default_set(g, out)
        else:
            from anchorudf.config import CATEGORIES
            from anchorudf.data.ingest import ingest_dataset

            # garments.categories filters user data only when changed from the default
            # list (user datasets have their own categories, e.g. "unknown").
            keep = None if set(g.categories) == set(CATEGORIES) else list(g.categories)
            result = ingest_dataset(Path(g.input), g.source, out, categories=keep,
                                    test_fraction=g.test_fraction, seed=g.seed, strict=g.strict,
                                    up_axis=g.up_axis, workers=g.workers)
            from anchorudf.data.ingest import suspect_orientations

            # garments that look rotated after normalisation (up axis wrong?): also warned
            summary = {"garments": len(result.rows), "rejected": len(result.rejects),
                       "orientation_warnings": suspect_orientations(result.rows)}
    except GarmentSetError as exc:
        raise StageError(str(exc)) from None
    if report is not None:
        from anchorudf.utils.io import write_json

        write_json(report, summary)
    return summary


def _check_failures(stage: str, summary: dict, strict: bool) -> dict:
    """Log the summary's ``failed`` list ([{"id", "error"}], utils.parallel); raise if strict."""
    failed = summary["failed"]
    if failed:
        names = ", ".join(f"{f['id']} ({f['error']})" for f in failed[:10])
        log.warning("%s: %d garment(s) failed and were skipped: %s", stage, len(failed), names)
        if strict:
            raise StageError(f"{stage}: {len(failed)} garment(s) failed: {names}")
    return summary


def render(p: Params, garments_dir: Path, out_dir: Path, shard: int) -> dict:
    """Stage 2: render shard ``shard`` of the garments into ``out_dir/shard-<k>``."""
    from anchorudf.render.stage import render_shard

    _check_shard("render", shard, p.render.shards)
    return _check_failures("render", render_shard(Path(garments_dir), Path(out_dir), p.render, shard),
                           p.garments.strict)


def sample(p: Params, garments_dir: Path, cache_dir: Path, shard: int) -> dict:
    """Stage 3a: query points and exact targets of shard ``shard`` into ``cache_dir/samples``."""
    from anchorudf.data.sample_stage import build_sample_shard

    _check_shard("sample", shard, p.sample.shards)
    return _check_failures("sample", build_sample_shard(Path(garments_dir), Path(cache_dir), p.sample, shard),
                           p.garments.strict)


def anchors(p: Params, garments_dir: Path, cache_dir: Path) -> dict:
    """Stage 3b: k-means anchors and evaluation surface samples into ``cache_dir/anchors``."""
    from anchorudf.data.sample_stage import build_anchors

    return _check_failures("anchors", build_anchors(Path(garments_dir), Path(cache_dir), p.anchors,
                                                    p.evaluate.gt_points, workers=p.sample.workers),
                           p.garments.strict)


def _check_shard(stage: str, shard: int, shards: list[int]) -> None:
    if shard not in shards:
        raise StageError(f"{stage}: shard {shard} is not one of {stage}.shards {shards}")


def preprocess(p: Params, out: Path) -> dict:
    """All preprocessing outside DVC: garments, render, sample, anchors into ``out``.

    Layout: ``out/garments``, ``out/render/shard-<k>``, ``out/cache/{samples,anchors}``,
    the same as the DVC pipeline's ``data/`` folder, so ``anchorudf train --data out``
    reads it.
    """
    out = Path(out)
    summary = {"garments": garments(p, out / "garments")}
    summary["render"] = [render(p, out / "garments", out / "render", k) for k in p.render.shards]
    summary["sample"] = [sample(p, out / "garments", out / "cache", k) for k in p.sample.shards]
    summary["anchors"] = anchors(p, out / "garments", out / "cache")
    return summary


def train(p: Params, data_dir: Path, run_dir: Path, *, live_dir: Path | None = None,
          max_steps: int | None = None, synthetic_items: int | None = None) -> dict:
    """Stage 4: train the model on the train split of ``data_dir`` into ``run_dir``.

    ``synthetic_items``: train on that many synthetic items instead (smoke tests).
    """
    from anchorudf.train.run import TrainDataError, train_from_data

    try:
        return train_from_data(p, data_dir, run_dir, live_dir=live_dir, max_steps=max_steps,
                               synthetic_items=synthetic_items)
    except TrainDataError as exc:
        raise StageError(str(exc)) from None  # the message names the file


def evaluate(p: Params, data_dir: Path, model_dir: Path, out_dir: Path, recon_dir: Path,
             metrics_path: Path | None = None) -> dict:
    """Stage 5: reconstruct and score the test views; writes the table, pictures, metrics."""
    from anchorudf.evaluate.stage import evaluate as run_evaluation
    from anchorudf.evaluate.table import format_table
    from anchorudf.utils.io import ensure_writable_dir, write_json

    data_dir = Path(data_dir)
    if metrics_path is not None:   # before the work: an unwritable folder fails now, not at the end
        ensure_writable_dir(Path(metrics_path).parent)
    summary = run_evaluation(p, data_dir / "garments", data_dir / "render", data_dir / "cache",
                             Path(model_dir), Path(out_dir), Path(recon_dir))
    if metrics_path is not None:
        write_json(metrics_path, summary)
    print(format_table(summary))
    print(f"pictures: {Path(out_dir).resolve() / 'index.html'}")
    return summary
