"""Shaded offscreen renders of meshes in a view's NDC, and their depth (pyrender, OSMesa on CPU).

The camera is the one of :mod:`anchorudf.render.views`: orthographic, looking down NDC
``-z`` from ``z = CAMERA_Z`` with ``xmag = ymag = 1``, so NDC ``x, y`` in [-1, 1] span the
image and a render from ``yaw=0`` lines up with the input image pixel for pixel.
``yaw`` turns the mesh about the NDC ``+y`` axis through the origin first
(:func:`anchorudf.geometry.camera.yaw_rotation`, as the point splats' ``side=True``):
90 shows the garment's side, 180 its back.

Shading is computed per vertex on the CPU (two-sided Lambert from a light fixed to the
camera, on smooth vertex normals) and drawn by pyrender without its own lighting
(``RenderFlags.FLAT``): colours come out as given, so an error heat map keeps its colour
map, and both sides of an open surface are lit the same way. Faces are not culled.
"""

from __future__ import annotations

import numpy as np

from anchorudf.geometry.camera import yaw_rotation
from anchorudf.render.views import CAMERA_Z, ZFAR, ZNEAR

#: unit direction towards the light, camera frame (upper left, in front).
LIGHT = np.array([-0.35, 0.45, 0.82]) / np.linalg.norm([-0.35, 0.45, 0.82])
#: base colours (RGB uint8) of ground truth and reconstruction in the pictures.
GT_RGB = (150, 170, 200)
RECON_RGB = (215, 190, 150)
AMBIENT = 0.35


def turn(points: np.ndarray, yaw: float) -> np.ndarray:
    """(N, 3) points (or directions) turned by ``yaw`` degrees about NDC ``+y``."""
    p = np.asarray(points, dtype=np.float64)
    return p if not yaw else p @ yaw_rotation(float(yaw)).T


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals (zero for vertices without area)."""
    v, f = np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64)
    n = np.zeros_like(v)
    if len(f):
        cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        corners = f.ravel()  # each face's cross product goes to its three vertices
        for c in range(3):
            n[:, c] = np.bincount(corners, weights=np.repeat(cross[:, c], 3), minlength=len(v))
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, length, out=np.zeros_like(n), where=length > 0)


def shade(colors: np.ndarray, normals: np.ndarray, ambient: float = AMBIENT) -> np.ndarray:
    """(V, 3) uint8 colours lit two-sided: ``colors * (ambient + (1 - ambient) |n . L|)``."""
    lam = np.abs(np.asarray(normals, dtype=np.float64) @ LIGHT)
    k = ambient + (1.0 - ambient) * lam
    return (np.asarray(colors, dtype=np.float64) * k[:, None]).round().clip(0, 255).astype(np.uint8)


def _check(vertices, faces):
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"faces: vertex ids must lie in [0, {len(v) - 1}]")
    if not np.isfinite(v).all():
        raise ValueError("vertices: contain NaN or infinite coordinates")
    return v, f


def _scene(pyrender, v: np.ndarray, f: np.ndarray, colors: np.ndarray | None, background):
    bg = [c / 255.0 for c in background] + [1.0]
    scene = pyrender.Scene(bg_color=bg, ambient_light=[1.0, 1.0, 1.0])
    if len(f):
        kwargs = {}
        if colors is not None:
            rgba = np.concatenate([np.asarray(colors, np.float32)[:, :3] / 255.0,
                                   np.ones((len(v), 1), np.float32)], axis=1)
            kwargs["color_0"] = rgba
        material = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=1.0,
            alphaMode="OPAQUE", doubleSided=True)
        prim = pyrender.Primitive(positions=v.astype(np.float32), indices=f.astype(np.uint32),
                                  material=material, **kwargs)
        scene.add(pyrender.Mesh(primitives=[prim]))
    cam_pose = np.eye(4)
    cam_pose[2, 3] = CAMERA_Z
    scene.add(pyrender.OrthographicCamera(xmag=1.0, ymag=1.0, znear=ZNEAR, zfar=ZFAR), pose=cam_pose)
    return scene


def render_mesh(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None = None, *,
                size: int = 192, yaw: float = 0.0, lit: bool = True, ambient: float = AMBIENT,
                base: tuple = RECON_RGB, background: tuple = (255, 255, 255),
                backend: str = "auto") -> np.ndarray:
    """(size, size, 3) uint8 render of a mesh given in NDC, from ``yaw`` (degrees).

    ``colors``: (V, 3) uint8 per-vertex colours (image colours, an error colour map), else
    ``base`` everywhere. ``lit`` multiplies them by the two-sided Lambert shade of the
    turned mesh (:func:`shade`, with ``ambient``: higher keeps colours truer);
    ``lit=False`` draws the colours exactly. A mesh without faces gives the background.
    """
    from anchorudf.render.backend import get_renderer, import_pyrender

    v, f = _check(vertices, faces)
    size = int(size)
    if len(f) == 0:
        return np.full((size, size, 3), background, dtype=np.uint8)
    v = turn(v, yaw)
    c = (np.broadcast_to(np.asarray(base, np.uint8), (len(v), 3)) if colors is None
         else np.asarray(colors, np.uint8)[:, :3])
    if len(c) != len(v):
        raise ValueError(f"colors: expected {len(v)} rows, got {len(c)}")
    if lit:
        c = shade(c, vertex_normals(v, f), ambient)
    pyrender = import_pyrender(backend)
    renderer = get_renderer(size, size, backend)
    color, _ = renderer.render(_scene(pyrender, v, f, c, list(background)),
                               flags=pyrender.RenderFlags.FLAT)
    return np.array(color[..., :3], dtype=np.uint8)


def render_depth(vertices: np.ndarray, faces: np.ndarray, width: int, height: int, *,
                 backend: str = "auto") -> np.ndarray:
    """(height, width) NDC ``z`` of the front-most surface of a mesh in NDC (yaw 0).

    NaN where the mesh covers no pixel centre. Pixel ``(u, v)`` sees NDC ``(x, y)`` as in
    :func:`anchorudf.geometry.camera.ndc_to_pixel`, also for a non-square image (NDC x and
    y both span [-1, 1]). The z-buffer of the mesh itself: the visibility test of vertex
    colouring.
    """
    from anchorudf.render.backend import get_renderer, import_pyrender, ortho_ndc_depth, raw_depth

    v, f = _check(vertices, faces)
    if len(f) == 0:
        return np.full((int(height), int(width)), np.nan)
    v = v * np.array([width / height, 1.0, 1.0])  # pyrender's xmag is ymag * width / height
    pyrender = import_pyrender(backend)
    renderer = get_renderer(int(width), int(height), backend)
    depth = renderer.render(_scene(pyrender, v, f, None, [255, 255, 255]),
                            flags=pyrender.RenderFlags.DEPTH_ONLY)
    return ortho_ndc_depth(raw_depth(depth, ZNEAR, ZFAR), ZNEAR, ZFAR, CAMERA_Z)
