"""One training job: the dataset (pipeline caches or synthetic), then :func:`~anchorudf.train.trainer.train`.

This is what ``anchorudf train`` (and so ``dvc repro`` and ``torchrun -m anchorudf train``)
runs. ``synthetic_items`` trains on the tiny synthetic dataset instead of the caches
(smoke tests, DDP checks).
"""

from __future__ import annotations

from pathlib import Path

from anchorudf.config import Params
from anchorudf.errors import AnchorUDFError


class TrainDataError(ValueError, AnchorUDFError):
    """The training data under the data root could not be loaded."""


def train_from_data(p: Params, data_dir: Path, run_dir: Path, *, live_dir: Path | None = None,
                    max_steps: int | None = None, synthetic_items: int | None = None) -> dict[str, float]:
    """Train on the train split of ``data_dir`` (garments, render, cache) into ``run_dir``.

    With ``synthetic_items``, train on that many synthetic items and ignore ``data_dir``.
    Returns the final metrics of :func:`~anchorudf.train.trainer.train`; raises
    :class:`TrainDataError` when the data cannot be loaded.
    """
    from anchorudf.train.trainer import train

    if synthetic_items is not None:
        from anchorudf.train.synthetic import SyntheticDataset

        dataset = SyntheticDataset.from_params(p, length=synthetic_items)
        return train(p, dataset, run_dir, max_steps=max_steps, live_dir=live_dir)
    from anchorudf.train.data import build_dataset

    data_dir = Path(data_dir)
    try:
        dataset = build_dataset(p, "train", garments_dir=data_dir / "garments",
                                render_dir=data_dir / "render", cache_dir=data_dir / "cache")
    except (FileNotFoundError, ValueError) as exc:
        raise TrainDataError(str(exc)) from None
    return train(p, dataset, Path(run_dir), live_dir=live_dir, max_steps=max_steps)
