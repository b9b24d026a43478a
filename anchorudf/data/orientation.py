"""Does an ingested garment stand upright in the garment frame? (a check of ``garments.up_axis``)

After :func:`anchorudf.data.normalize.normalize_mesh` a garment is in the garment frame:
+Y up, the front towards +Z, largest extent 1. Worn garments are about as tall as wide or
taller (a T-pose top or shorts are at most about twice as wide as tall) and shallower
than wide: a garment whose largest extent is along depth, that is flat along the up axis,
or whose main principal axis points along depth was most likely ingested with the wrong
``garments.up_axis`` (``--up-axis``). :func:`orientation_findings` names what looks
wrong; the ingest writes it into the manifest ``notes`` (prefixed ``orientation:``) and
warns. Nothing is rotated: a finding is a prompt to check the up axis, not a verdict.
"""

from __future__ import annotations

import numpy as np

#: Thresholds of :func:`orientation_findings` (ratios of extents in the normalised frame).
DEPTH_OVER_HEIGHT = 1.15  # depth the largest extent and this much more than the height
FLAT_HEIGHT = 0.35  # height below this share of the largest extent
DEPTH_OVER_WIDTH = 1.4  # deeper than wide by this much: front perhaps along X
PRINCIPAL_Z = 0.85  # |z| of the main principal axis above this, with a clear main axis
PRINCIPAL_RATIO = 1.5  # variance of the main axis / second axis for a "clear" main axis

ORIENTATION_PREFIX = "orientation:"


def principal_axes(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted principal axes of a surface: (variances (3,) descending, axes (3, 3)
    as rows, each with a non-negative largest component), from the triangle centroids
    weighted by area (independent of how finely each part is meshed)."""
    v, f = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    tri = v[f]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    if len(f) == 0 or area.sum() <= 0:
        return np.zeros(3), np.eye(3)
    w = area / area.sum()
    c = tri.mean(axis=1)
    c = c - w @ c
    cov = (c * w[:, None]).T @ c
    val, vec = np.linalg.eigh(cov)
    order = np.argsort(val)[::-1]
    axes = vec[:, order].T
    axes *= np.where(axes[np.arange(3), np.abs(axes).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
    return val[order], axes


def orientation_findings(mesh) -> list[str]:
    """What looks rotated about a garment in the garment frame (+Y up, front +Z); empty when
    nothing does. Each finding names the measured extents or axis."""
    v = np.asarray(mesh.vertices, np.float64)
    if len(v) == 0:
        return []
    ex, ey, ez = np.ptp(v, axis=0)
    top = max(ex, ey, ez)
    if top <= 0:
        return []
    ex, ey, ez = ex / top, ey / top, ez / top
    sizes = f"extent x {ex:.2f}, y (up) {ey:.2f}, z (depth) {ez:.2f}"
    out = []
    if ey < FLAT_HEIGHT * max(ex, ez):
        out.append(f"flat along the up axis ({sizes}): check the up axis")
    elif ez >= max(ex, ey) and ez > DEPTH_OVER_HEIGHT * ey:
        out.append(f"largest extent along depth ({sizes}): lying on its front or back? check the up axis")
    elif ez > DEPTH_OVER_WIDTH * ex:
        out.append(f"deeper than wide ({sizes}): the front may face +-X, or the up axis is wrong")
    val, axes = principal_axes(v, np.asarray(mesh.faces))
    if not out and val[1] > 0 and val[0] > PRINCIPAL_RATIO * val[1] and abs(axes[0, 2]) > PRINCIPAL_Z:
        a = axes[0]
        out.append(f"main principal axis along depth ({a[0]:+.2f}, {a[1]:+.2f}, {a[2]:+.2f}): check the up axis")
    return [f"{ORIENTATION_PREFIX} {x}" for x in out]
