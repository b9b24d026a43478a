"""Orthographic cameras in the PIFu convention and the ``calib`` matrix.

Frames
------
- Garment frame: the normalised mesh frame. Bounding-box centre at the origin, largest
  extent 1 (the box lies in [-0.5, 0.5]^3), +Y up, the garment's front facing +Z.
- NDC: what a view sees. ``x`` right and ``y`` up, both in [-1, 1] across the image;
  ``z`` towards the camera. NDC is a similarity transform of the garment frame (same
  scale ``k`` on all three axes), so an unsigned distance in NDC is ``k`` times the
  distance in the garment frame.
- Pixels: column ``u = (x + 1) / 2 * W - 0.5``, row ``v = (1 - y) / 2 * H - 0.5`` (row 0
  at the top). ``torch.nn.functional.grid_sample`` on an image tensor therefore takes
  ``(x, -y)`` with ``align_corners=False``.

``calib = S @ R_y(yaw) @ T(-c)`` as a 4x4 matrix, with ``S = diag(k, k, k, 1)``. Yaw is the
camera's angle around the garment in degrees: at yaw 0 the camera looks at the front
(from +Z), at yaw 180 at the back; a positive yaw moves the camera towards the
garment's +X side (the garment turns by -yaw in front of a fixed camera).
"""

from __future__ import annotations

import numpy as np


def yaw_rotation(yaw_deg: float) -> np.ndarray:
    """3x3 rotation taking garment coordinates into the camera frame at ``yaw_deg``."""
    t = np.deg2rad(yaw_deg)
    c, s = np.cos(t), np.sin(t)
    # Rotation about +Y by -yaw: the camera orbits by +yaw.
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def view_scale(vertices: np.ndarray, fill: float = 0.88, center: np.ndarray | None = None) -> float:
    """NDC units per garment unit so the garment fills ``fill`` of the image at every yaw.

    The limiting size is the larger of the height and the diameter of the vertical
    cylinder (around the +Y axis through ``center``) that contains the garment, so no
    yaw can push it out of the view.
    """
    v = np.asarray(vertices, dtype=np.float64)
    c = np.zeros(3) if center is None else np.asarray(center, dtype=np.float64)
    d = v - c
    half_height = np.abs(d[:, 1]).max()
    radius = np.sqrt(d[:, 0] ** 2 + d[:, 2] ** 2).max()
    extent = max(half_height, radius)
    if not np.isfinite(extent) or extent <= 0:
        raise ValueError("cannot frame a garment of zero size")
    return float(fill / extent)


def make_calib(yaw_deg: float, scale: float, center: np.ndarray | None = None) -> np.ndarray:
    """4x4 float64 matrix mapping homogeneous garment-frame points to NDC at ``yaw_deg``."""
    c = np.zeros(3) if center is None else np.asarray(center, dtype=np.float64)
    m = np.eye(4)
    r = yaw_rotation(yaw_deg)
    m[:3, :3] = scale * r
    m[:3, 3] = -scale * (r @ c)
    return m


def project(calib: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 ``calib`` to (N, 3) garment-frame points; returns (N, 3) NDC points."""
    p = np.asarray(points, dtype=np.float64)
    return p @ calib[:3, :3].T + calib[:3, 3]


def unproject(calib: np.ndarray, ndc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`project`: (N, 3) NDC points back to the garment frame."""
    inv = np.linalg.inv(calib)
    q = np.asarray(ndc, dtype=np.float64)
    return q @ inv[:3, :3].T + inv[:3, 3]


def calib_scale(calib: np.ndarray) -> float:
    """NDC units per garment unit of a similarity ``calib`` (multiply distances by it)."""
    return float(np.cbrt(abs(np.linalg.det(np.asarray(calib, dtype=np.float64)[:3, :3]))))


def ndc_to_pixel(ndc: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 2+) NDC -> (N, 2) continuous pixel coordinates (u column, v row; centres at .0)."""
    ndc = np.asarray(ndc, dtype=np.float64)
    u = (ndc[:, 0] + 1.0) * 0.5 * width - 0.5
    v = (1.0 - ndc[:, 1]) * 0.5 * height - 0.5
    return np.stack([u, v], axis=1)
