"""Turning a user's image into the network's input: mask, crop, pad, resize.

Accepted: an RGB image with a separate mask, an RGBA image (alpha is the mask), or an RGB
image on a plain background (the mask is derived from the border colour, with a warning).
Grayscale and 16-bit images are converted. The garment is framed like the training
renders: its silhouette's bounding box is centred and its larger side fills ``fill`` of a
square image of ``size`` pixels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from anchorudf.errors import AnchorUDFError


class InputImageError(ValueError, AnchorUDFError):
    """An input image or mask that cannot be used; the message names the file."""


# The largest input accepted, in pixels (a 48-megapixel photo fits); larger images are
# rejected from their header, before any pixel is decoded (PIL's own decompression-bomb
# limit is higher, 89 M pixels with a warning, an error from 179 M).
MAX_INPUT_PIXELS = 64 * 1024 * 1024


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise InputImageError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our limit is lower
            im = Image.open(path)
        w, h = im.size
        if w * h > MAX_INPUT_PIXELS:
            raise InputImageError(f"{path}: image is {w}x{h} pixels, more than the "
                                  f"{MAX_INPUT_PIXELS / 2**20:.0f} M pixel limit; downscale it")
        im.load()
    except Image.DecompressionBombError as exc:
        raise InputImageError(f"{path}: image too large ({exc}); downscale it") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputImageError(f"{path}: not a readable image ({exc})") from None
    return im


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    a = a.astype(np.float64)
    hi = 65535.0 if a.max(initial=0) > 255 else 255.0
    return np.clip(np.round(a / hi * 255.0), 0, 255).astype(np.uint8)


def _as_array(im) -> np.ndarray:
    """PIL image -> uint8 array (H, W) or (H, W, C), 16-bit modes scaled to 8 bits."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        return _to_uint8(np.asarray(im, dtype=np.uint32))
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("LA", "PA"):
        im = im.convert("RGBA")
    if im.mode not in ("L", "RGB", "RGBA"):
        im = im.convert("RGB")
    return _to_uint8(np.asarray(im))


def _background_mask(rgb: np.ndarray, path: Path, tol: float = 12.0) -> np.ndarray:
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.float64)
    bg = np.median(border, axis=0)
    spread = np.abs(border - bg).max(axis=1)
    if np.mean(spread <= tol) < 0.9:
        raise InputImageError(f"{path}: no alpha channel, no --mask, and the background is not "
                              "a plain colour: pass a mask")
    warnings.warn(f"{path}: no mask given; derived one from the plain background colour "
                  f"{tuple(int(c) for c in bg)}", stacklevel=3)
    return np.abs(rgb.astype(np.float64) - bg).max(axis=2) > tol


def load_input(image_path: Path, mask_path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB and (H, W) bool mask of a user's image (not yet framed)."""
    a = _as_array(_open(image_path))
    alpha = None
    if a.ndim == 2:
        rgb = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 4:
        rgb, alpha = a[:, :, :3], a[:, :, 3]
    else:
        rgb = a[:, :, :3]
    if mask_path is not None:
        m = _as_array(_open(mask_path))
        m = m if m.ndim == 2 else (m[:, :, 3] if m.shape[2] == 4 else m.max(axis=2))
        if m.shape != rgb.shape[:2]:
            raise InputImageError(f"{mask_path}: mask is {m.shape[1]}x{m.shape[0]} but the image "
                                  f"is {rgb.shape[1]}x{rgb.shape[0]}")
        mask = m > 127
    elif alpha is not None and (alpha < 255).any():
        mask = alpha > 127
    else:
        mask = _background_mask(rgb, Path(image_path))
    if mask.sum() < 16:
        raise InputImageError(f"{mask_path or image_path}: the mask is empty (fewer than 16 pixels)")
    return rgb, mask


def frame_input(rgb: np.ndarray, mask: np.ndarray, size: int, fill: float = 0.88,
                background: tuple[int, int, int] = (255, 255, 255)) -> tuple[np.ndarray, np.ndarray]:
    """Centre the silhouette, scale its larger side to ``fill`` of a ``size`` square."""
    from PIL import Image

    rows, cols = np.nonzero(mask)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    side = max(r1 - r0, c1 - c0) / fill
    cy, cx = (r0 + r1) / 2.0, (c0 + c1) / 2.0
    pad = int(np.ceil(side))
    h, w = mask.shape
    # Pad by a full side on every edge so the crop box never leaves the canvas.
    canvas = np.empty((h + 2 * pad, w + 2 * pad, 3), dtype=np.uint8)
    canvas[...] = np.asarray(background, dtype=np.uint8)
    canvas[pad:pad + h, pad:pad + w][mask] = rgb[mask]
    canvas_mask = np.zeros(canvas.shape[:2], dtype=np.uint8)
    canvas_mask[pad:pad + h, pad:pad + w] = mask.astype(np.uint8) * 255
    box = tuple(int(round(b + pad)) for b in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    out_rgb = Image.fromarray(canvas).crop(box).resize((size, size), Image.BILINEAR)
    out_mask = Image.fromarray(canvas_mask).crop(box).resize((size, size), Image.NEAREST)
    out_rgb, out_mask = np.array(out_rgb), np.asarray(out_mask) > 127
    out_rgb[~out_mask] = np.asarray(background, dtype=np.uint8)  # no bilinear bleed outside
    return out_rgb, out_mask
