"""The pipeline's stages: parse nothing, take resolved :class:`Params`, call the library.

The CLI (``anchorudf <stage>``), ``dvc repro`` (whose ``dvc.yaml`` calls the CLI) and
``anchorudf preprocess`` all run these same functions, so each step has one
implementation.
"""

from __future__ import annotations

import logging
from pathlib import Path

from anchorudf.config import Params

log = logging.getLogger(__name__)


class StageError(RuntimeError):
    """A stage could not produce its outputs; the message says what and where."""


def _progress(iterable, total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="garment", dynamic_ncols=True)


def garments(p: Params, out: Path, *, up_axis: str = "+Y", report: Path | None = None) -> dict:
    """Stage 1: the garment set into ``out`` (meshes, manifest.csv, rejects.csv).

    ``garments.source == "default"`` generates the embedded anny garment set; otherwise
    the user dataset at ``garments.input`` is ingested in its format.
    """
    g = p.garments
    out = Path(out)
    if g.source == "default":
        summary = _default_garments(p, out)
    else:
        from anchorudf.data.ingest import IngestError, ingest_dataset

        try:
            from anchorudf.config import CATEGORIES

            # garments.categories filters user data only when changed from the default
            # list (user datasets have their own categories, e.g. "unknown").
            keep = None if set(g.categories) == set(CATEGORIES) else list(g.categories)
            result = ingest_dataset(Path(g.input), g.source, out, categories=keep,
                                    test_fraction=g.test_fraction, seed=g.seed, strict=g.strict,
                                    up_axis=up_axis)
        except IngestError as exc:
            raise StageError(str(exc)) from None
        summary = {"garments": len(result.rows), "rejected": len(result.rejects)}
    if report is not None:
        from anchorudf.utils.io import write_json

        write_json(report, summary)
    return summary


def _default_garments(p: Params, out: Path) -> dict:
    import numpy as np

    from anchorudf.data.anny_garments import generate_garment, plan_garments
    from anchorudf.data.manifest import write_manifest
    from anchorudf.data.meshio import save_garment
    from anchorudf.data.normalize import normalize_mesh
    from anchorudf.geometry.topology import boundary_loops

    g = p.garments
    specs = plan_garments(g.count, list(g.categories), g.seed, g.test_fraction)
    rows, rejects, meshes = [], [], {}
    for spec in _progress(specs, len(specs), "garments"):
        try:
            mesh = generate_garment(spec, Path(g.anny_cache))
            mesh, scale, offset = normalize_mesh(mesh)
        except Exception as exc:  # one bad garment must not kill the others
            log.warning("garment %s failed: %s", spec.garment_id, exc)
            rejects.append({"file": f"anny:{spec.garment_id}", "reason": f"generation failed: {exc}"})
            continue
        rel = save_garment(out, spec.garment_id, mesh)
        meshes[spec.garment_id] = mesh
        offset = np.asarray(offset, dtype=np.float64)
        rows.append({"id": spec.garment_id, "category": spec.category, "split": spec.split,
                     "group": spec.body_id, "source": f"anny:{spec.garment_id}", "mesh": rel,
                     "vertices": len(mesh.vertices), "faces": len(mesh.faces),
                     "boundary_loops": boundary_loops(mesh.faces), "scale": float(scale),
                     "offset_x": float(offset[0]), "offset_y": float(offset[1]),
                     "offset_z": float(offset[2]), "status": "ok", "notes": ""})
    if rejects and g.strict:
        raise StageError("rejected garments: " + "; ".join(f"{r['file']}: {r['reason']}" for r in rejects))
    if not rows:
        raise StageError("no garment could be generated")
    write_manifest(out, rows, rejects)
    summary = {"garments": len(rows), "rejected": len(rejects),
               "train": sum(r["split"] == "train" for r in rows),
               "test": sum(r["split"] == "test" for r in rows)}
    summary.update(_diversity(meshes, specs, out))
    return summary


def _diversity(meshes: dict, specs: list, out: Path) -> dict:
    """Each test garment's paper-convention Chamfer to its nearest training garment."""
    from anchorudf.data.diversity import nearest_train_distances
    from anchorudf.utils.io import write_text

    specs = [s for s in specs if s.garment_id in meshes]
    df = nearest_train_distances(meshes, specs)
    write_text(out / "diversity.csv", df.to_csv(index=False, lineterminator="\n"))
    if df.empty:
        return {}
    per_cat = df.groupby("category")["chamfer"].median()
    return {"nearest_train_chamfer_median_1e3": float(df["chamfer"].median() * 1e3),
            "nearest_train_chamfer_min_1e3": float(df["chamfer"].min() * 1e3),
            "nearest_train_chamfer_by_category_1e3": {k: float(v * 1e3) for k, v in per_cat.items()}}


def _check_failures(stage: str, summary: dict, strict: bool) -> dict:
    failed = summary.get("failed") or []
    if isinstance(failed, dict):  # {garment id: error}
        failed = [{"id": k, "error": v} for k, v in sorted(failed.items())]
    if failed:
        names = ", ".join(f"{f['id']} ({f.get('error', '')})" if isinstance(f, dict) else str(f)
                          for f in failed[:10])
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


def preprocess(p: Params, out: Path, *, up_axis: str = "+Y") -> dict:
    """All preprocessing outside DVC: garments, render, sample, anchors into ``out``.

    Layout: ``out/garments``, ``out/render/shard-<k>``, ``out/cache/{samples,anchors}``,
    the same as the DVC pipeline's ``data/`` folder, so ``anchorudf train --data out``
    reads it.
    """
    out = Path(out)
    summary = {"garments": garments(p, out / "garments", up_axis=up_axis)}
    summary["render"] = [render(p, out / "garments", out / "render", k) for k in p.render.shards]
    summary["sample"] = [sample(p, out / "garments", out / "cache", k) for k in p.sample.shards]
    summary["anchors"] = anchors(p, out / "garments", out / "cache")
    return summary


def train(p: Params, data_dir: Path, run_dir: Path, *, live_dir: Path | None = None,
          max_steps: int | None = None) -> dict:
    """Stage 4: train the model on the train split of ``data_dir`` into ``run_dir``."""
    from anchorudf.train.data import build_dataset
    from anchorudf.train.trainer import train as run_training

    data_dir = Path(data_dir)
    try:
        dataset = build_dataset(p, "train", garments_dir=data_dir / "garments",
                                render_dir=data_dir / "render", cache_dir=data_dir / "cache")
    except (FileNotFoundError, ValueError) as exc:
        raise StageError(f"train: {exc}") from None
    return run_training(p, dataset, Path(run_dir), live_dir=live_dir, max_steps=max_steps)


def evaluate(p: Params, data_dir: Path, model_dir: Path, out_dir: Path, recon_dir: Path,
             metrics_path: Path | None = None) -> dict:
    """Stage 5: reconstruct and score the test views; writes the table, pictures, metrics."""
    from anchorudf.evaluate.stage import evaluate as run_evaluation
    from anchorudf.evaluate.stage import format_table
    from anchorudf.utils.io import write_json

    data_dir = Path(data_dir)
    summary = run_evaluation(p, data_dir / "garments", data_dir / "render", data_dir / "cache",
                             Path(model_dir), Path(out_dir), Path(recon_dir))
    if metrics_path is not None:
        write_json(metrics_path, summary)
    print(format_table(summary))
    print(f"pictures: {Path(out_dir).resolve() / 'index.html'}")
    return summary
