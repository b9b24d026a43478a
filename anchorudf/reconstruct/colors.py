"""Vertex colours of a reconstructed mesh from its input image.

The mesh is in the view's NDC (x right, y up, z towards the camera) and the image looks
along ``-z`` orthographically, so vertex ``(x, y, z)`` sits at pixel
``ndc_to_pixel((x, y))``. A vertex is *seen* when nothing of the mesh lies in front of it
there: its ``z`` is within ``tolerance`` of the mesh's own z-buffer (a depth render of the
mesh, :func:`anchorudf.render.shaded.render_depth`), and it falls on (or within
``mask_margin`` pixels of) the garment's mask. Seen vertices take their pixel's colour,
bilinearly interpolated in an image whose background pixels carry the colour of the
nearest garment pixel (no background bleeds in at the silhouette). Every other vertex
(the back, the inside, what the front hides) takes the colour of the seen vertex nearest
to it along the surface (shortest path over mesh edges); a piece of the mesh with no seen
vertex takes the colour of the seen vertex nearest in space.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from anchorudf.geometry.camera import ndc_to_pixel
from anchorudf.geometry.topology import unique_rows

if TYPE_CHECKING:
    from anchorudf.reconstruct.image import Reconstruction

#: a vertex this far (NDC) behind the front-most surface at its pixel is hidden.
TOLERANCE = 0.03
#: seen vertices may project this many pixels outside the mask (a silhouette that is
#: slightly off); beyond it they are coloured like hidden ones.
MASK_MARGIN = 2.0
#: colour of every vertex when none is seen (RGB).
FALLBACK = (160, 160, 160)


def _filled_image(rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image with every pixel coloured as its nearest mask pixel, distance to the mask)."""
    from scipy.ndimage import distance_transform_edt

    if mask.all() or not mask.any():
        return rgb.astype(np.float64), np.zeros(mask.shape)
    dist, (iy, ix) = distance_transform_edt(~mask, return_indices=True)
    return rgb[iy, ix].astype(np.float64), dist


def _bilinear(img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(N, C) bilinear samples of an (H, W, C) image at continuous pixel coords (clamped)."""
    h, w = img.shape[:2]
    u = np.clip(uv[:, 0], 0, w - 1)
    v = np.clip(uv[:, 1], 0, h - 1)
    u0 = np.minimum(np.floor(u).astype(np.int64), w - 2) if w > 1 else np.zeros(len(u), np.int64)
    v0 = np.minimum(np.floor(v).astype(np.int64), h - 2) if h > 1 else np.zeros(len(v), np.int64)
    u1, v1 = np.minimum(u0 + 1, w - 1), np.minimum(v0 + 1, h - 1)
    a, b = (u - u0)[:, None], (v - v0)[:, None]
    return ((1 - a) * (1 - b) * img[v0, u0] + a * (1 - b) * img[v0, u1]
            + (1 - a) * b * img[v1, u0] + a * b * img[v1, u1])


def _front_depth(depth: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """The farthest of the 4 pixel centres around each ``uv`` (NaN: none covered)."""
    h, w = depth.shape
    u0 = np.floor(uv[:, 0]).astype(np.int64)
    v0 = np.floor(uv[:, 1]).astype(np.int64)
    out = np.full(len(uv), np.nan)
    for du in (0, 1):
        for dv in (0, 1):
            uu, vv = u0 + du, v0 + dv
            ok = (uu >= 0) & (uu < w) & (vv >= 0) & (vv < h)
            d = np.full(len(uv), np.nan)
            d[ok] = depth[vv[ok], uu[ok]]
            out = np.fmin(out, d)
    return out


def visible_vertices(vertices: np.ndarray, faces: np.ndarray, width: int, height: int,
                     tolerance: float = TOLERANCE, backend: str = "auto") -> np.ndarray:
    """(V,) bool: vertices (NDC) inside the image that no part of the mesh hides."""
    from anchorudf.render.shaded import render_depth

    v = np.asarray(vertices, dtype=np.float64)
    depth = render_depth(v, faces, width, height, backend=backend)
    uv = ndc_to_pixel(v, width, height)
    front = _front_depth(depth, uv)
    inside = (uv[:, 0] >= -0.5) & (uv[:, 0] <= width - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] <= height - 0.5)
    return inside & (np.isnan(front) | (v[:, 2] >= front - tolerance))


def _fill_along_surface(vertices: np.ndarray, faces: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(V,) index of the seen vertex each vertex takes its colour from."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra
    from scipy.spatial import cKDTree

    n = len(vertices)
    src = np.arange(n)
    src[~seen] = -1
    if not seen.any() or seen.all():
        return src
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = unique_rows(np.sort(e[e[:, 0] != e[:, 1]], axis=1))  # each edge once
    w = np.linalg.norm(vertices[e[:, 0]] - vertices[e[:, 1]], axis=1) + 1e-12  # 0 = no edge
    graph = coo_matrix((w, (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    _, _, sources = dijkstra(graph, directed=False, indices=np.flatnonzero(seen), min_only=True,
                             return_predecessors=True)
    src = np.where(sources >= 0, sources, -1)
    src[seen] = np.flatnonzero(seen)
    lost = np.flatnonzero(src < 0)  # pieces without a seen vertex: nearest in space
    if len(lost):
        seen_idx = np.flatnonzero(seen)
        _, j = cKDTree(vertices[seen_idx]).query(vertices[lost])
        src[lost] = seen_idx[j]
    return src


def vertex_colors(vertices: np.ndarray, faces: np.ndarray, rgb: np.ndarray,
                  mask: np.ndarray | None = None, *, tolerance: float = TOLERANCE,
                  mask_margin: float = MASK_MARGIN, backend: str = "auto"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(colors (V, 3) uint8, seen (V,) bool) of a mesh in the NDC of image ``rgb``.

    ``rgb`` (H, W, 3) uint8 is the input image, ``mask`` (H, W) bool the garment's pixels
    (None: all). See the module docstring for what is seen and how the rest is filled.
    """
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    rgb = np.asarray(rgb)[..., :3]
    h, w = rgb.shape[:2]
    m = np.ones((h, w), bool) if mask is None else np.asarray(mask, bool)
    if len(v) == 0:
        return np.zeros((0, 3), np.uint8), np.zeros(0, bool)
    if len(f) == 0 or not m.any():
        return np.tile(np.asarray(FALLBACK, np.uint8), (len(v), 1)), np.zeros(len(v), bool)
    img, dist = _filled_image(rgb, m)
    uv = ndc_to_pixel(v, w, h)
    seen = visible_vertices(v, f, w, h, tolerance, backend)
    seen &= _bilinear(dist[..., None], uv)[:, 0] <= mask_margin
    colors = np.tile(np.asarray(FALLBACK, np.float64), (len(v), 1))
    colors[seen] = _bilinear(img, uv[seen])
    src = _fill_along_surface(v, f, seen)
    has = src >= 0
    colors[has] = colors[src[has]]
    return colors.round().clip(0, 255).astype(np.uint8), seen


def image_colors(points: np.ndarray, rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) uint8 colour of each NDC point's pixel (bilinear, garment pixels only), without
    a visibility test: for point clouds drawn from the input view, where the nearest
    point wins anyway."""
    rgb = np.asarray(rgb)[..., :3]
    h, w = rgb.shape[:2]
    m = np.ones((h, w), bool) if mask is None else np.asarray(mask, bool)
    img, _ = _filled_image(rgb, m)
    uv = ndc_to_pixel(np.asarray(points, dtype=np.float64).reshape(-1, 3), w, h)
    return _bilinear(img, uv).round().clip(0, 255).astype(np.uint8)


def colorize(rec: Reconstruction, rgb: np.ndarray, mask: np.ndarray | None = None,
             backend: str = "auto") -> Reconstruction:
    """``rec`` with ``mesh_colors`` from its input image (a copy; None without a mesh)."""
    if len(rec.mesh_faces) == 0:
        return dataclasses.replace(rec, mesh_colors=None)
    colors, _ = vertex_colors(rec.mesh_vertices, rec.mesh_faces, rgb, mask, backend=backend)
    return dataclasses.replace(rec, mesh_colors=colors)
