"""Offscreen rendering of garment views (orthographic, 360-degree yaw sweep, with calib).

Importing this package does not import pyrender or OpenGL: the OpenGL platform must be
chosen (:func:`select_backend`) before that happens, so the rendering names below load
their modules on first use.
"""

from __future__ import annotations

from anchorudf.render.layout import View, load_views, view_yaws

_LAZY = {
    "select_backend": "anchorudf.render.backend",
    "BackendError": "anchorudf.render.backend",
    "render_views": "anchorudf.render.views",
    "RenderedView": "anchorudf.render.views",
    "RenderError": "anchorudf.render.views",
    "render_shard": "anchorudf.render.stage",
    "render_mesh": "anchorudf.render.shaded",
    "render_depth": "anchorudf.render.shaded",
}

__all__ = ["View", "load_views", "view_yaws", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'anchorudf.render' has no attribute {name!r}")
