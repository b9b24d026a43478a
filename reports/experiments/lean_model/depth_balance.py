"""How much the depth term steers the image encoder, and how much depth its head knows.

For one trained model (a model or checkpoint folder with depth heads) on the default
garment set's data root:

1. **Gradient balance.** On a few real training batches (``params.yaml``'s items: 4 views,
   4000 query points, augmented as in training), the norm of the gradient that each loss
   term of the main phase sends into the image encoder's weights: the UDF term (last
   stack, ``train.delta``, ``train.udf_clamp``), the anchor term at the trainer's weight
   (``lambda_ap x K / N``) and the depth term (``lambda_depth`` = 1). RMSprop and Adam
   divide each weight's step by the running size of its gradient, so the term with by far
   the largest gradient sets the encoder's direction whatever its weight: the ratio says
   which weight makes the terms comparable.
2. **What the depth head knows.** On views of a split (unaugmented), the head's L1 error
   per covered cell against two references computed from the target itself: the best
   constant per view and depth (each target's median: what a head that knows only the
   view's mean depth scores) and the head's error once its own per-view median offset is
   removed (its error in shape, not in placement).

    python reports/experiments/lean_model/depth_balance.py MODEL [DATA] [--views 60]
    # e.g. runs/s1dinput0/checkpoints/step_00004500 runs/base/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from anchorudf.config import load_params
from anchorudf.models.checkpoint import load_model
from anchorudf.train.data import build_dataset
from anchorudf.train.depth import depth_loss
from anchorudf.train.losses import anchor_chamfer, udf_loss


def _dataset(params, data: Path, split: str, augment: bool):
    return build_dataset(params, split, garments_dir=data / "garments", render_dir=data / "render",
                         cache_dir=data / "cache", augment=augment)


def gradient_balance(model, params, data: Path, batches: int = 4) -> dict[str, float]:
    """Mean over ``batches`` of each main-phase term's gradient norm on the encoder."""
    ds = _dataset(params, data, "train", augment=True)
    t = params.train
    encoder = [q for n, q in model.named_parameters() if n.startswith("encoder.")]
    norms: dict[str, list[float]] = {"udf": [], "anchors": [], "depth": []}
    model.train()
    for k in range(batches):
        picks = np.random.default_rng(k).choice(len(ds), t.batch_size, replace=False)
        items = [ds[(int(i), 1000 + k)] for i in picks]
        b = {key: torch.stack([it[key] for it in items]) for key in items[0]}
        out = model(b["image"], b["points"], with_grad=False, last_only=False, fine=False)
        anchors, points = b["anchors"].shape[1], b["points"].shape[1]
        terms = {"udf": udf_loss(out["udf"][-1], b["udf"], t.delta, t.udf_clamp),
                 "anchors": t.lambda_ap * anchors / points * anchor_chamfer(out["anchors"], b["anchors"]),
                 "depth": depth_loss(out["depth"][-1], b["depth"], b["depth_covered"])}
        for name, term in terms.items():
            grads = torch.autograd.grad(term, encoder, retain_graph=True, allow_unused=True)
            norms[name].append(float(torch.sqrt(sum((g ** 2).sum() for g in grads if g is not None))))
    return {name: float(np.mean(v)) for name, v in norms.items()}


def depth_knowledge(model, params, data: Path, split: str, views: int) -> dict[str, float]:
    """Mean per view of the head's L1 error, the best constant's and the offset-free head's."""
    ds = _dataset(params, data, split, augment=False)
    picks = np.random.default_rng(0).choice(len(ds), min(views, len(ds)), replace=False)
    rows = []
    model.eval()
    for i in picks:
        it = ds[int(i)]
        with torch.no_grad():
            pred = model.encode(it["image"][None]).depth[-1][0].numpy()
        target, covered = it["depth"].numpy(), it["depth_covered"].numpy()[0] > 0
        err = (pred - target)[:, covered]
        tgt = target[:, covered]
        rows.append((np.abs(err).mean(),
                     np.mean([np.abs(tgt[c] - np.median(tgt[c])).mean() for c in range(2)]),
                     np.mean([np.abs(err[c] - np.median(err[c])).mean() for c in range(2)]),
                     (tgt[0] - tgt[1]).mean()))
    head, const, shape, thick = np.mean(rows, axis=0)
    return {"head": head, "best_constant": const, "head_offset_removed": shape, "thickness": thick}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("data", type=Path, nargs="?", default=Path("runs/base/data"))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--views", type=int, default=60)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    params = load_params(a.params)
    model, _ = load_model(a.model)
    if model.depth_heads is None:
        raise SystemExit(f"{a.model}: the model has no depth heads (model.depth_head)")
    g = gradient_balance(model, params, a.data)
    print("encoder gradient norm per term: " + ", ".join(f"{k} {v:.4g}" for k, v in g.items())
          + f"; depth / udf = {g['depth'] / g['udf']:.1f}")
    for split in ("train", "test"):
        d = depth_knowledge(model, params, a.data, split, a.views)
        print(f"{split}: depth head L1 {d['head']:.4f} NDC, best constant per view {d['best_constant']:.4f}, "
              f"head without its per-view offset {d['head_offset_removed']:.4f} "
              f"(mean near - far thickness {d['thickness']:.3f})")


if __name__ == "__main__":
    main()
