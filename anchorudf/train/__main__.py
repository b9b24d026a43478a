"""``python -m anchorudf.train`` / ``torchrun --nproc_per_node=N -m anchorudf.train``.

    torchrun --nproc_per_node=2 -m anchorudf.train --params params.yaml -S train.steps=100 \\
        --run-dir runs/exp1 [--synthetic] [--max-steps K]

Parses, loads params (strict, with ``-S section.key=value`` overrides), builds the
dataset, calls :func:`anchorudf.train.trainer.train`. ``--synthetic`` trains on the tiny
synthetic dataset (smoke tests, DDP checks) instead of the pipeline's caches.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m anchorudf.train", description="Train AnchorUDF.")
    ap.add_argument("--params", default="params.yaml",
                    help="params file (default params.yaml; built-in defaults when it is absent)")
    ap.add_argument("-S", "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a parameter (repeatable), like `dvc exp run -S`")
    ap.add_argument("--run-dir", required=True, type=Path, help="checkpoints, logs and the final model")
    ap.add_argument("--data", default=Path("data"), type=Path,
                    help="preprocessed data root (garments, render, cache), as `anchorudf train --data`")
    ap.add_argument("--live-dir", default=None, type=Path, help="dvclive folder (default RUN_DIR/dvclive)")
    ap.add_argument("--synthetic", action="store_true", help="train on the synthetic dataset")
    ap.add_argument("--synthetic-items", type=int, default=16, help="items of the synthetic dataset")
    ap.add_argument("--max-steps", type=int, default=None, help="stop at this absolute step (resumable)")
    return ap.parse_args(argv)


def main_from_args(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    import os

    from anchorudf.config import ConfigError, load_params
    from anchorudf.train.trainer import train

    args = parse_args(argv)
    path = Path(args.params)
    try:
        params = load_params(path if path.is_file() or args.params != "params.yaml" else None, args.set)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.synthetic:
        from anchorudf.train.synthetic import SyntheticDataset

        dataset = SyntheticDataset.from_params(params, length=args.synthetic_items)
        metrics = train(params, dataset, args.run_dir, max_steps=args.max_steps, live_dir=args.live_dir)
    else:
        from anchorudf import stages

        try:  # the same function as `anchorudf train` and the DVC stage
            metrics = stages.train(params, args.data, args.run_dir, live_dir=args.live_dir,
                                   max_steps=args.max_steps)
        except stages.StageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main_from_args())
