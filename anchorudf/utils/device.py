"""The torch device type a run uses: ``train.device`` resolved against the hardware."""

from __future__ import annotations


def resolve_device_type(kind: str) -> str:
    """``"auto"`` -> ``"cuda"`` when CUDA is available, else ``"cpu"``; other kinds as given.

    Raises RuntimeError for ``"cuda"`` without a CUDA device.
    """
    import torch

    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device: 'cuda' requested but no CUDA device is available")
    if kind == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return kind
