"""The AnchorUDF network. Import is lazy so ``import anchorudf.models`` does not load torch.

``from anchorudf.models import AnchorUDF, Encoded`` loads ``anchorudf.models.anchorudf``.
"""

from __future__ import annotations

__all__ = ["AnchorUDF", "Encoded"]


def __getattr__(name: str):
    if name in __all__:
        from anchorudf.models import anchorudf as _m

        return getattr(_m, name)
    raise AttributeError(f"module 'anchorudf.models' has no attribute {name!r}")
