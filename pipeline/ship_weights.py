"""Package a trained model as the shipped weights (``anchorudf/weights/``).

Usage (the shipped recipe's data root is ``runs/wide/data``: the default garment set
with ``garments.extra_train`` more training garments; the test and shifted garments are
the default set's, so ``reports/metrics.json`` is the baseline on the same views)::

    anchorudf preprocess --params pipeline/presets/shipped.yaml --out runs/wide/data
    anchorudf train --params pipeline/presets/shipped.yaml --data runs/wide/data \\
        --run-dir runs/wide/train --live-dir runs/wide/live
    anchorudf evaluate --params pipeline/presets/shipped.yaml --data runs/wide/data \\
        --model runs/wide/train/model --out runs/wide/eval --recon runs/wide/recon \\
        --metrics runs/wide/metrics.json -S evaluate.baselines=false
    python pipeline/ship_weights.py --model runs/wide/train/model \\
        --params pipeline/presets/shipped.yaml --metrics runs/wide/metrics.json \\
        --baseline reports/metrics.json --live runs/wide/live/metrics.json \\
        --data runs/wide/data --run-name wide

A recipe in stages (a model fine-tuned from another, ``train.init``): pass the card the
first stage was shipped with as ``--from-card`` (and ``--run-name`` for this stage's run
folder, e.g. ``shipped_ft``); the card then records both stages, and the total steps and
minutes.

It copies the model folder to ``anchorudf/weights/default/`` (verified first), writes the
example inputs (``--examples`` rendered test views as RGBA PNGs with their ground-truth
surface points in view NDC, and one drawn garment on a plain background that is not a
render), and writes ``card.json`` last: the sha256 of every file, the recipe, the data
version and the metrics beside the 30-minute default's (``--baseline``).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np

from anchorudf import weights
from anchorudf.config import load_params
from anchorudf.data.images import load_rgb_mask
from anchorudf.data.manifest import read_manifest
from anchorudf.data.meshio import load_garment, mesh_arrays
from anchorudf.geometry.camera import project
from anchorudf.geometry.sampling import surface_samples
from anchorudf.models.checkpoint import load_model, sha256_file
from anchorudf.render.layout import load_views
from anchorudf.utils.io import atomic_path, write_json

#: Test views shipped as examples: (garment category, yaw) picked from the test split.
EXAMPLE_VIEWS = (("tshirt", 0.0), ("trousers", 40.0), ("skirt", 320.0))
GT_POINTS = 4000
SCORE_KEYS = ("paper_chamfer_1e3", "paper_p2s_1e3", "chamfer_l1", "p2s", "fscore", "side_iou", "grad_cos")


def _save_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, optimize=True)


def rendered_examples(data: Path, out: Path, seed: int) -> list[dict]:
    """Write the EXAMPLE_VIEWS test views (RGBA PNG) and their ground truth (view NDC)."""
    df = read_manifest(data / "garments")
    test = df[df["split"] == "test"].sort_values("id")
    examples = []
    for category, yaw in EXAMPLE_VIEWS:
        rows = test[test["category"] == category]
        if not len(rows):
            continue
        r = rows.iloc[0]
        view = next(x for x in load_views(data / "render", r["id"]) if abs(x.yaw - yaw) < 1e-6)
        rgb, mask = load_rgb_mask(Path(view.image), Path(view.mask))
        name = f"{r['id']}_yaw{int(yaw):03d}"
        _save_png(out / f"{name}.png", np.dstack([rgb, mask.astype(np.uint8) * 255]))
        v, f = mesh_arrays(load_garment(data / "garments", r["mesh"]))
        gt = project(np.asarray(view.calib), surface_samples(v, f, GT_POINTS, np.random.default_rng(seed))[0]).astype(np.float32)
        with atomic_path(out / f"{name}_gt.npy") as tmp:
            np.save(tmp, gt)
        examples.append({"image": f"examples/{name}.png", "gt": f"examples/{name}_gt.npy",
                         "garment": r["id"], "category": category, "yaw": yaw, "split": "test",
                         "description": f"rendered test view: {r['id']} at yaw {yaw:g} (held-out body), "
                                        "RGBA (alpha = mask)"})
    return examples


def drawn_example(out: Path, seed: int) -> dict:
    """A T-shirt drawn with polygons (flat cloth, a stripe, soft shading, a drop shadow-free
    plain background), saved as JPEG: an input that is not a render of ours. No mask: the
    reconstruction derives it from the plain background."""
    from PIL import Image, ImageDraw, ImageFilter

    size = 360
    rng = np.random.default_rng(seed)
    bg = (232, 230, 226)
    cloth = np.array([58, 96, 150], np.float64)
    shirt = [(120, 60), (150, 50), (180, 72), (210, 50), (240, 60), (300, 110), (272, 150), (250, 132),
             (252, 310), (108, 310), (110, 132), (88, 150), (60, 110)]
    mask_im = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask_im).polygon(shirt, fill=255)
    mask = np.asarray(mask_im) > 127
    yy, xx = np.mgrid[0:size, 0:size]
    shade = 0.82 + 0.25 * np.exp(-(((xx - 165) / 90.0) ** 2 + ((yy - 150) / 140.0) ** 2))  # soft light
    shade -= 0.08 * (np.sin(xx / 9.0 + yy / 23.0) > 0.85)  # folds
    stripe = (np.abs(yy - 200) < 9)[..., None] * np.array([120, 90, 30])
    rgb = np.clip(cloth[None, None] * shade[..., None] + stripe + rng.normal(0, 3, (size, size, 3)), 0, 255)
    img = np.empty((size, size, 3), np.uint8)
    img[...] = bg
    img[mask] = rgb[mask].astype(np.uint8)
    im = Image.fromarray(img).filter(ImageFilter.GaussianBlur(0.6))  # antialiased edge
    name = "drawn_tshirt.jpg"
    with atomic_path(out / name) as tmp:
        im.save(tmp, format="JPEG", quality=95)
    return {"image": f"examples/{name}", "gt": None, "garment": None, "category": "tshirt", "yaw": 0.0,
            "split": None, "description": "a T-shirt drawn with polygons on a plain background (JPEG, no "
                                          "mask): not a render; no ground truth"}


def _scores(metrics: dict, key: str = "anchorudf_points") -> dict:
    out = {}
    for split, block in (("test", metrics), ("shifted", metrics.get("shifted", {}))):
        m = block.get(key)
        if m:
            out[split] = {k: m.get(k) for k in SCORE_KEYS} | {"views": m.get("views")}
    return out


def staged_recipe(stage: dict, earlier: dict) -> dict:
    """The recipe of a model fine-tuned from another: this ``stage`` (its params file, steps,
    minutes, command) after the ``earlier`` recipe (itself staged or not). Steps and
    minutes are totals; the command runs every stage in order; ``stages`` lists them."""
    stages = earlier.get("stages") or [earlier]
    return {**stage, "steps": sum(int(x["steps"]) for x in stages) + int(stage["steps"]),
            "train_minutes": round(sum(float(x["train_minutes"]) for x in stages) + float(stage["train_minutes"]), 1),
            "command": "; ".join([x["command"] for x in stages] + [stage["command"]]),
            "stages": [dict(x) for x in stages] + [dict(stage)]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="trained model folder (run_dir/model)")
    ap.add_argument("--params", type=Path, required=True, help="the params file it was trained with")
    ap.add_argument("--metrics", type=Path, required=True, help="its evaluate metrics.json")
    ap.add_argument("--baseline", type=Path, required=True, help="the 30-minute default's metrics.json")
    ap.add_argument("--live", type=Path, required=True, help="its training dvclive metrics.json")
    ap.add_argument("--data", type=Path, default=Path("data"), help="the default set's data root")
    ap.add_argument("--train-minutes", type=float, default=None, help="wall-clock training time")
    ap.add_argument("--machine", default="2 CPU cores (no GPU)")
    ap.add_argument("--out", type=Path, default=weights.WEIGHTS_DIR)
    ap.add_argument("--from-card", type=Path, default=None,
                    help="card.json of the model this one was fine-tuned from (train.init): its recipe "
                         "is recorded as the earlier stage(s)")
    ap.add_argument("--run-name", default="shipped", help="run folder name in the recorded command (runs/NAME)")
    a = ap.parse_args(argv)

    import json

    p = load_params(a.params)
    _, meta = load_model(a.model)  # verified: checksums, shapes, values
    live = json.loads(a.live.read_text())
    steps = int(live.get("step", meta["step"]))
    minutes = a.train_minutes or round(steps * float(live["final/seconds_per_step"]) / 60.0, 1)
    recipe = {"params_file": str(a.params), "steps": steps, "train_minutes": minutes, "machine": a.machine,
              "command": f"anchorudf train --params {a.params} --data {a.data} --run-dir runs/{a.run_name}/train "
                         f"--live-dir runs/{a.run_name}/live",
              "params_sha256": hashlib.sha256(a.params.read_bytes()).hexdigest(),
              "final_train": {k: live.get(f"final/{k}") for k in ("udf", "anchor_chamfer", "gda")}}
    if a.from_card:  # read before the copy below may overwrite it (it is often the shipped card)
        recipe = staged_recipe(recipe, json.loads(a.from_card.read_text())["recipe"])
    dest = a.out / "default"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(a.model, dest)
    (a.out / "examples").mkdir(parents=True, exist_ok=True)
    examples = rendered_examples(a.data, a.out / "examples", p.evaluate.seed)
    examples.append(drawn_example(a.out / "examples", p.evaluate.seed))
    manifest = a.data / "garments" / "manifest.csv"
    files = sorted(str(x.relative_to(a.out)) for x in (a.out / "default").iterdir()) + \
        sorted(x for e in examples for x in (e["image"], e["gt"]) if x)
    card = {
        "format": weights.CARD_FORMAT, "version": 1, "name": "default", "model": "default",
        "sha256": {name: sha256_file(a.out / name) for name in files},
        "recipe": recipe,
        "data": {"description": f"the embedded default garment set (garments.count {p.garments.count}, "
                               f"shifted_count {p.garments.shifted_count}, seed {p.garments.seed})"
                               + (f" with {p.garments.extra_train} extra training garments of the same "
                                  f"generator (garments.extra_train; same test and shifted garments)"
                                  if p.garments.extra_train else ""),
                 "manifest_sha256": sha256_file(manifest),
                 "garments": int(len(read_manifest(a.data / "garments")))},
        "metrics": _scores(json.loads(a.metrics.read_text())),
        "metrics_mesh": _scores(json.loads(a.metrics.read_text()), "anchorudf_mesh"),
        "baseline": _scores(json.loads(a.baseline.read_text())),
        "baseline_note": "the 30-minute default (params.yaml) on the same data: reports/metrics.json",
        "examples": examples,
    }
    write_json(a.out / weights.CARD, card)
    weights.verify(a.out)
    print(weights.describe(card, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
