"""The shipped weights on their example images: wall time of the whole command, and quality.

Run: ``python benchmarks/bench_shipped.py`` (about 1-2 minutes on 2 cores).

1. ``anchorudf reconstruct <example>`` (no ``--checkpoint``: the shipped weights), as a
   fresh process per example image, so start-up, weight verification, meshing, colours
   and the preview are all counted: wall seconds each, against the 30 s target.
2. For the rendered examples (those with a ground truth): the paper Chamfer / P2S (x1e-3)
   of the dense points at the evaluation's settings (params.yaml), the same numbers the
   evaluate stage computes, against the shipped ground-truth points.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 30.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    a = ap.parse_args()

    import torch

    from anchorudf import weights
    from anchorudf.config import load_params
    from anchorudf.data.images import image_tensors
    from anchorudf.evaluate.metrics import ndc_to_paper, paper_chamfer, paper_p2s
    from anchorudf.reconstruct.image import reconstruct_image
    from anchorudf.reconstruct.inputs import load_input

    card = weights.verify()
    print(f"torch threads {torch.get_num_threads()}; target: under {TARGET_S:.0f} s per image")
    print("| example | wall s (whole command) | mesh faces | paper Chamfer | paper P2S |\n|---|---|---|---|---|")
    model, meta, _ = weights.load_shipped()
    p = load_params(a.params)
    worst = 0.0
    for e in card["examples"]:
        image = weights.WEIGHTS_DIR / e["image"]
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "anchorudf", "reconstruct", str(image), "--out", tmp,
                            "--params", str(a.params)], check=True, capture_output=True)
            wall = time.perf_counter() - t
            import trimesh

            faces = len(trimesh.load(Path(tmp) / "mesh.obj", process=False).faces)
        worst = max(worst, wall)
        chamfer = p2s = "-"
        if e.get("gt"):
            rgb, mask = load_input(image)
            torch.manual_seed(p.evaluate.seed)
            rec = reconstruct_image(model, image_tensors(rgb, mask)[0], p.evaluate,
                                    delta=meta["params"]["train"]["delta"], mesh=False)
            gt = ndc_to_paper(np.load(weights.WEIGHTS_DIR / e["gt"]).astype(np.float64))
            pred = ndc_to_paper(rec.points.astype(np.float64))
            chamfer, p2s = f"{1e3 * paper_chamfer(pred, gt):.3f}", f"{1e3 * paper_p2s(pred, gt):.3f}"
        print(f"| {Path(e['image']).name} | {wall:.1f} | {faces} | {chamfer} | {p2s} |")
    print(f"slowest {worst:.1f} s: {'within' if worst < TARGET_S else 'OVER'} the {TARGET_S:.0f} s target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
