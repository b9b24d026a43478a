"""The embedded default garment set written as a garments folder (stage 1, source=default).

:func:`build_default_set` plans ``garments.count`` garments, generates each on its anny
body (:mod:`anchorudf.data.anny.garments`), normalises it to the garment frame (bounding
box centred, largest extent 1, +Y up), saves it, and writes ``manifest.csv`` /
``rejects.csv`` (:mod:`anchorudf.data.manifest`) and ``diversity.csv``
(:mod:`anchorudf.data.diversity`). Besides train and test, ``garments.shifted_count``
style-shifted garments (split ``shifted``) are generated for evaluation only, and
``garments.extra_train`` more training garments (0 by default) widen the training world
without changing the test and shifted garments. Same params, same bytes.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anchorudf.config import GarmentsConfig

log = logging.getLogger(__name__)


def spec_notes(spec) -> str:
    """The manifest ``notes`` of a generated garment: its pose, cut variant and appearance
    (e.g. ``pose=walk style=pleated appearance=grey``)."""
    return f"pose={spec.pose} style={spec.style} appearance={spec.appearance}"


def _load_body(anny_cache: str) -> None:
    """Worker initializer: load the anny body assets once per process."""
    from anchorudf.data.anny.body import body_assets

    body_assets(Path(anny_cache))


def _generate_one(spec, anny_cache: str):
    """(mesh in the garment frame, scale, offset) of one planned garment."""
    from anchorudf.data.anny.garments import generate_garment
    from anchorudf.data.normalize import normalize_mesh

    return normalize_mesh(generate_garment(spec, Path(anny_cache)))


def build_default_set(cfg: GarmentsConfig, out: Path) -> dict:
    """Generate the default set of ``cfg`` into ``out``; returns the stage summary.

    Garments are generated in ``cfg.workers`` processes (each seeds from its own spec:
    the same bytes for any worker count) and saved in plan order.

    A garment whose generation fails is logged and listed in ``rejects.csv``
    (``anny:<id>``); the others go on. Raises :class:`~anchorudf.data.manifest.GarmentSetError`
    when any garment failed with ``cfg.strict``, or when none could be generated. The
    summary holds the counts (garments, rejected, train, test, shifted), the counts of
    appearances, styles and poses (train + test, and shifted), and the nearest-train
    Chamfer statistics of :func:`anchorudf.data.diversity.write_diversity`. Each
    manifest row's ``notes`` are :func:`spec_notes` (pose, style, appearance).
    """
    from anchorudf.data.anny.plan import plan_garments
    from anchorudf.data.diversity import write_diversity
    from anchorudf.data.manifest import GarmentSetError, manifest_row, write_manifest
    from anchorudf.data.meshio import save_garment
    from anchorudf.utils.parallel import run_per_garment

    out = Path(out)
    specs = plan_garments(cfg.count, list(cfg.categories), cfg.seed, cfg.test_fraction, cfg.shifted_count,
                          cfg.extra_train, list(cfg.extra_categories))
    tasks = {spec.garment_id: (spec, str(cfg.anny_cache)) for spec in specs}
    made, failed = run_per_garment(_generate_one, tasks, cfg.workers, "garments",
                                   initializer=_load_body, initargs=(str(cfg.anny_cache),))
    errors = {f["id"]: f["error"] for f in failed}
    rows, rejects, meshes = [], [], {}
    for spec in specs:  # plan order, whatever order the workers finished in
        if spec.garment_id in errors:  # one bad garment must not kill the others
            log.warning("garment %s failed: %s", spec.garment_id, errors[spec.garment_id])
            rejects.append({"file": f"anny:{spec.garment_id}",
                            "reason": f"generation failed: {errors[spec.garment_id]}"})
            continue
        mesh, scale, offset = made[spec.garment_id]
        rel = save_garment(out, spec.garment_id, mesh)
        meshes[spec.garment_id] = mesh
        rows.append(manifest_row(spec.garment_id, spec.category, spec.split, spec.body_id,
                                 f"anny:{spec.garment_id}", rel, mesh, scale, offset, notes=spec_notes(spec)))
    if rejects and cfg.strict:
        raise GarmentSetError("rejected garments: " + "; ".join(f"{r['file']}: {r['reason']}" for r in rejects))
    if not rows:
        raise GarmentSetError("no garment could be generated")
    write_manifest(out, rows, rejects)
    summary = {"garments": len(rows), "rejected": len(rejects),
               "train": sum(r["split"] == "train" for r in rows),
               "test": sum(r["split"] == "test" for r in rows),
               "shifted": sum(r["split"] == "shifted" for r in rows)}
    made = [s for s in specs if s.garment_id in meshes]
    for key in ("appearance", "style", "pose"):  # how varied the set is: train + test, and shifted
        for kind in ("train_test", "shifted"):
            count = Counter(getattr(s, key) for s in made if (s.split == "shifted") == (kind == "shifted"))
            summary[f"{kind}_{key}s"] = dict(sorted(count.items()))
    summary.update(write_diversity(meshes, specs, out))
    return summary
