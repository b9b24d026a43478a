"""Pictures without OpenGL: z-buffered point splats of clouds and meshes, panels, colour maps.

Everything is drawn orthographically in NDC (x right, y up, z towards the viewer), so a
picture of a reconstruction lines up with its input image. ``side=True`` turns the
cloud by 90 degrees about +Y first (the view from the garment's right). Shaded mesh
renders (OpenGL) are in :mod:`anchorudf.render.shaded`; the colour map of error heat maps
and its colour bar are here.
"""

from __future__ import annotations

import numpy as np

from anchorudf.geometry.camera import yaw_rotation

LIGHT = np.array([0.4, 0.5, 0.77])
#: viridis (matplotlib's; plotly's ``Viridis``), 10 stops from low to high.
VIRIDIS = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779",
           "#6ece58", "#b5de2b", "#fde725")


def _turn(points: np.ndarray, side: bool) -> np.ndarray:
    return points @ yaw_rotation(90.0).T if side else points


def splat(points: np.ndarray, size: int = 256, colors: np.ndarray | None = None,
          normals: np.ndarray | None = None, side: bool = False, radius: int = 1,
          background: int = 255) -> np.ndarray:
    """(size, size, 3) uint8 image of (N, 3) NDC points, nearest point wins per pixel.

    Colour: ``colors`` (N, 3) uint8 if given, else Lambert shading from ``normals``,
    else depth shading (near = dark blue, far = light).
    """
    img = np.full((size, size, 3), background, dtype=np.uint8)
    if len(points) == 0:
        return img
    p = _turn(np.asarray(points, dtype=np.float64), side)
    if colors is None:
        if normals is not None:
            n = _turn(np.asarray(normals, dtype=np.float64), side)
            shade = 0.25 + 0.75 * np.abs(n @ LIGHT)  # open surfaces: both sides lit
            colors = (np.outer(shade, [200, 185, 160])).clip(0, 255).astype(np.uint8)
        else:
            t = (p[:, 2] - p[:, 2].min()) / max(np.ptp(p[:, 2]), 1e-9)
            colors = (np.outer(1 - t, [40, 60, 140]) + np.outer(t, [170, 200, 240])).astype(np.uint8)
    u = np.floor((p[:, 0] + 1) * 0.5 * size).astype(np.int64)
    v = np.floor((1 - p[:, 1]) * 0.5 * size).astype(np.int64)
    order = np.argsort(p[:, 2], kind="stable")  # far first, near last: near overwrites
    for du in range(-radius + 1, radius):
        for dv in range(-radius + 1, radius):
            uu, vv = u[order] + du, v[order] + dv
            ok = (uu >= 0) & (uu < size) & (vv >= 0) & (vv < size)
            img[vv[ok], uu[ok]] = colors[order][ok]
    return img


def mesh_points(vertices: np.ndarray, faces: np.ndarray, count: int = 200_000,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dense area-weighted samples of a mesh with their face normals, for :func:`splat`.

    Points in the frame of ``vertices``; seeded (:func:`anchorudf.geometry.sampling.surface_samples`
    with ``pick="choice"``). Empty arrays for a mesh without faces or area.
    """
    from anchorudf.geometry.sampling import surface_samples

    v, f = np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64)
    if len(f) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    area = np.linalg.norm(cross, axis=1)  # twice the face areas
    if area.sum() <= 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    pts, idx = surface_samples(v, f, count, np.random.default_rng(seed), pick="choice")
    normals = cross[idx] / np.maximum(area[idx], 1e-12)[:, None]
    return pts, normals


def panel(tiles: list[np.ndarray], titles: list[str], tile: int = 256) -> np.ndarray:
    """Tiles side by side with a caption strip above each; returns (H, W, 3) uint8."""
    from PIL import Image, ImageDraw

    cap = 18
    out = Image.new("RGB", (tile * len(tiles), tile + cap), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    for i, (t, title) in enumerate(zip(tiles, titles)):
        im = Image.fromarray(np.asarray(t, dtype=np.uint8)).convert("RGB").resize((tile, tile))
        out.paste(im, (i * tile, cap))
        draw.text((i * tile + 4, 3), title, fill=(0, 0, 0))
    return np.asarray(out)


def save_png(path, image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 image atomically as PNG."""
    from PIL import Image

    from anchorudf.utils.io import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format="PNG")


def colormap(values: np.ndarray, vmax: float, vmin: float = 0.0) -> np.ndarray:
    """(N, 3) uint8 viridis colours of ``values`` over [vmin, vmax] (clipped; NaN: grey)."""
    stops = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in VIRIDIS], dtype=np.float64)
    x = np.asarray(values, dtype=np.float64).ravel()
    t = np.clip((x - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0) * (len(stops) - 1)
    t = np.nan_to_num(t, nan=0.0)
    i = np.minimum(t.astype(np.int64), len(stops) - 2)
    w = (t - i)[:, None]
    out = (stops[i] * (1 - w) + stops[i + 1] * w).round().astype(np.uint8)
    out[np.isnan(x)] = 160
    return out


def colorbar(height: int, width: int, vmax: float, label: str, ticks: int = 6,
             over: bool = True) -> np.ndarray:
    """(height, width, 3) uint8 vertical colour bar of :func:`colormap` on [0, vmax].

    Tick labels right of the bar (the top one reads ``>= vmax`` when ``over``: larger
    values are clipped to its colour), ``label`` above it.
    """
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (int(width), int(height)), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=11)
    top, bottom, left, bar_w = 34, int(height) - 10, 10, 16
    draw.multiline_text((4, 2), label, fill=(0, 0, 0), font=font, spacing=1)
    n = max(bottom - top, 2)
    grad = colormap(np.linspace(vmax, 0.0, n), vmax)
    img.paste(Image.fromarray(np.repeat(grad[:, None], bar_w, axis=1)), (left, top))
    draw.rectangle([left - 1, top - 1, left + bar_w, top + n], outline=(0, 0, 0))
    for k in range(ticks):
        val = vmax * k / (ticks - 1)
        y = top + round((n - 1) * (1 - k / (ticks - 1)))
        draw.line([left + bar_w, y, left + bar_w + 4, y], fill=(0, 0, 0))
        text = f"{val:.3g}" if not (over and k == ticks - 1) else f">= {val:.3g}"
        draw.text((left + bar_w + 7, y - 6), text, fill=(0, 0, 0), font=font)
    return np.asarray(img)
