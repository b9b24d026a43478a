"""OpenGL platform selection and one reusable offscreen renderer per process.

PyOpenGL picks its platform (OSMesa, EGL, GLX) from ``PYOPENGL_PLATFORM`` the first time
anything imports ``OpenGL``, so :func:`select_backend` must run before ``pyrender`` is
imported; :func:`import_pyrender` does both in the right order.

Depth: pyrender converts its depth buffer with the perspective formula even for an
orthographic camera, so its "depth" values are wrong for us; only their zero/non-zero
pattern is right (pyrender writes exactly 0 where the raw buffer holds the far value 1.0).
:func:`raw_depth` undoes the conversion to get the raw window depth in [0, 1], from which
:func:`ortho_ndc_depth` gives the true NDC ``z`` and :func:`depth_mask` the coverage.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
import warnings
from functools import lru_cache

import numpy as np

from anchorudf.errors import AnchorUDFError

# system library -> (names ctypes may load, Debian package providing it)
_LIBS = {
    "osmesa": (("OSMesa", "libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so"), "libOSMesa.so", "libosmesa6"),
    "egl": (("EGL", "libEGL.so.1", "libEGL.so"), "libEGL.so", "libegl1"),
}

_RENDERERS: dict[tuple[int, int], object] = {}
_WARNED: set[str] = set()


class BackendError(RuntimeError, AnchorUDFError):
    """No usable OpenGL platform; the message names the missing system library."""


@lru_cache(maxsize=None)
def _library_loads(platform: str) -> bool:
    names, _, _ = _LIBS[platform]
    for name in names:
        path = ctypes.util.find_library(name) if "." not in name else name
        if not path:
            continue
        try:
            ctypes.CDLL(path)
            return True
        except OSError:
            continue
    return False


@lru_cache(maxsize=None)
def cuda_gpu_present() -> bool:
    """True when an NVIDIA GPU is visible (device node or a working ``nvidia-smi -L``)."""
    if os.path.exists("/dev/nvidia0"):
        return True
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def _missing(platform: str) -> str:
    _, lib, pkg = _LIBS[platform]
    return f"{lib} (Debian package {pkg})"


def select_backend(preference: str = "auto") -> str:
    """Choose the OpenGL platform for ``RenderConfig.backend`` and export it.

    ``auto`` takes EGL when a CUDA GPU is present, else OSMesa (falling back to the other
    when the first one's library is missing). Sets ``PYOPENGL_PLATFORM`` unless it is
    already set, in which case that value wins (it may already be in use). Returns the
    platform in effect (``"osmesa"`` or ``"egl"``, or whatever the environment names).
    Raises :class:`BackendError` naming the missing system library when none works.
    """
    if preference not in ("auto", "osmesa", "egl"):
        raise ValueError(f"render.backend: {preference!r} is not one of auto, osmesa, egl")
    current = os.environ.get("PYOPENGL_PLATFORM", "").strip().lower()
    if current:
        if preference != "auto" and preference != current and preference not in _WARNED:
            _WARNED.add(preference)
            warnings.warn(f"render.backend={preference} ignored: PYOPENGL_PLATFORM={current} is "
                          "already set in the environment", stacklevel=2)
        if current in _LIBS and not _library_loads(current):
            raise BackendError(f"PYOPENGL_PLATFORM={current} but {_missing(current)} cannot be "
                               "loaded; install it or unset PYOPENGL_PLATFORM")
        return current
    if preference == "auto":
        order = ["egl", "osmesa"] if cuda_gpu_present() else ["osmesa", "egl"]
    else:
        order = [preference]
    for platform in order:
        if _library_loads(platform):
            if "OpenGL" in sys.modules:
                warnings.warn("OpenGL was imported before the render backend was selected; "
                              f"PYOPENGL_PLATFORM={platform} may have no effect", stacklevel=2)
            os.environ["PYOPENGL_PLATFORM"] = platform
            return platform
    wanted = " or ".join(_missing(p) for p in order)
    raise BackendError(f"no OpenGL backend for render.backend={preference}: cannot load {wanted}. "
                       "Install the system library (e.g. `apt-get install libosmesa6`).")


def import_pyrender(preference: str = "auto"):
    """Select the backend, then import and return the ``pyrender`` module.

    pyrender imports pyglet (for its viewer, which we never open); pyglet's default X11
    platform then needs X client libraries, absent on headless GPU servers (seen on an
    H200: "'NoneType' object has no attribute 'XRenderFindVisualFormat'"). Offscreen
    rendering needs no window, so pyglet is put in headless mode unless the user set
    PYGLET_HEADLESS; OSMesa renders are byte-identical either way (checked).
    """
    select_backend(preference)
    os.environ.setdefault("PYGLET_HEADLESS", "1")
    import pyrender

    return pyrender


def get_renderer(width: int, height: int, preference: str = "auto"):
    """This process's ``pyrender.OffscreenRenderer`` of the given size, created once.

    Creating a renderer (GL context, framebuffers, shaders) costs far more than a frame,
    so workers keep one per size for all garments and views.
    """
    key = (int(width), int(height))
    if key not in _RENDERERS:
        pyrender = import_pyrender(preference)
        _RENDERERS[key] = pyrender.OffscreenRenderer(viewport_width=key[0], viewport_height=key[1])
    return _RENDERERS[key]


def release_renderers() -> None:
    """Delete this process's cached renderers (frees the GL contexts)."""
    while _RENDERERS:
        _, r = _RENDERERS.popitem()
        try:
            r.delete()
        except Exception:  # noqa: BLE001 - a context already gone at exit is harmless
            pass


def raw_depth(pyrender_depth: np.ndarray, znear: float, zfar: float) -> np.ndarray:
    """Undo pyrender's perspective depth conversion: (H, W) raw window depth in [0, 1].

    Background (pyrender's exact 0) maps to 1.0, the far value of the raw buffer.
    """
    d = np.asarray(pyrender_depth, dtype=np.float64)
    out = np.ones_like(d)
    hit = d > 0
    # pyrender: depth = 2 n f / (f + n - z_ndc (f - n)), z_ndc = 2 raw - 1
    z_ndc = (zfar + znear - 2.0 * znear * zfar / d[hit]) / (zfar - znear)
    out[hit] = np.clip(0.5 * (z_ndc + 1.0), 0.0, 1.0)
    return out


def depth_mask(raw: np.ndarray) -> np.ndarray:
    """(H, W) bool coverage from a raw depth buffer: true where something was drawn."""
    return np.asarray(raw) < 1.0


def ortho_ndc_depth(raw: np.ndarray, znear: float, zfar: float, camera_z: float) -> np.ndarray:
    """(H, W) NDC ``z`` of the visible surface for an orthographic camera at ``camera_z``.

    The orthographic depth buffer is linear in eye distance: ``dist = n + raw (f - n)``;
    NaN where nothing was drawn.
    """
    raw = np.asarray(raw, dtype=np.float64)
    z = camera_z - (znear + raw * (zfar - znear))
    return np.where(depth_mask(raw), z, np.nan)
