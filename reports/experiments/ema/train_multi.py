"""`anchorudf train` with extra weight averages beside train.ema, for the EMA experiment.

One training run scores several EMA decays against the optimizer's own weights (a paired
comparison: same run, same seed). Besides what `anchorudf train -S train.ema=D` writes
(model/ = the average at decay D, model_raw/ = the optimizer's weights), every decay in
--extra gets model_ema<decay>/ (e.g. model_ema0.995/). The extra averages are not part of
the checkpoints: run it uninterrupted.

    python reports/experiments/ema/train_multi.py --extra 0.995 0.999 -- \
        --data data --run-dir runs/ema/s0 -S train.ema=0.998 -S train.seed=0
"""

from __future__ import annotations

import argparse
import sys

import anchorudf.train.trainer as T


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--extra", type=float, nargs="+", required=True)
    args, rest = ap.parse_known_args()
    rest = [a for a in rest if a != "--"]
    run_dir = rest[rest.index("--run-dir") + 1]

    from pathlib import Path

    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from anchorudf.train.checkpoint import export_model

    init, step, final = T.Trainer.__init__, T.Trainer.train_step, T.Trainer.final_model

    def patched_init(self, *a, **k):
        init(self, *a, **k)
        self.extra_emas = {d: AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(d), use_buffers=True)
                           for d in args.extra}

    def patched_step(self, batch):
        out = step(self, batch)
        for ema in self.extra_emas.values():
            ema.update_parameters(self.model)
        return out

    def patched_final(self):
        # run_training asks for the final model at export and again for its return value:
        # the extra averages are written once, at the export of a finished run.
        if self.step == T.total_steps_of_run and not getattr(self, "extras_exported", False):
            for d, ema in self.extra_emas.items():
                export_model(Path(run_dir) / f"model_ema{d}", ema.module, None, self.step)
            self.extras_exported = True
        return final(self)

    T.Trainer.__init__, T.Trainer.train_step, T.Trainer.final_model = patched_init, patched_step, patched_final
    from anchorudf.cli import app
    from anchorudf.config import load_params

    overrides = [rest[i + 1] for i, a in enumerate(rest) if a in ("-S", "--set")]
    T.total_steps_of_run = T.total_steps(load_params("params.yaml", overrides))
    sys.argv = ["anchorudf", "train", *rest]
    app()


if __name__ == "__main__":
    main()
