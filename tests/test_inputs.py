import warnings

import numpy as np
import pytest
from PIL import Image

from anchorudf.reconstruct.inputs import InputImageError, frame_input, load_input


def _garment(h=80, w=60):
    rgb = np.full((h, w, 3), 255, np.uint8)
    mask = np.zeros((h, w), bool)
    mask[20:60, 15:35] = True
    rgb[mask] = (200, 30, 30)
    return rgb, mask


def test_rgba_mask_and_plain_background(tmp_path):
    rgb, mask = _garment()
    rgba = np.dstack([rgb, mask.astype(np.uint8) * 255])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    _, m = load_input(tmp_path / "a.png")
    assert (m == mask).all()
    Image.fromarray(rgb).save(tmp_path / "b.png")
    with pytest.warns(UserWarning, match="derived"):
        _, m = load_input(tmp_path / "b.png")
    assert (m == mask).all()
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "m.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, m = load_input(tmp_path / "b.png", tmp_path / "m.png")
    assert (m == mask).all()


def test_grayscale_and_16bit(tmp_path):
    rgb, mask = _garment()
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "m.png")
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "g.png")
    out, _ = load_input(tmp_path / "g.png", tmp_path / "m.png")
    assert out.shape == (80, 60, 3)
    Image.fromarray((rgb[:, :, 0].astype(np.uint16) * 257)).save(tmp_path / "g16.png")
    out16, _ = load_input(tmp_path / "g16.png", tmp_path / "m.png")
    assert out16.dtype == np.uint8 and np.abs(out16.astype(int) - out.astype(int)).max() <= 1


def test_errors_name_the_file(tmp_path):
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(InputImageError, match="x.png: not a readable image"):
        load_input(tmp_path / "x.png")
    with pytest.raises(InputImageError, match="not found"):
        load_input(tmp_path / "missing.png")
    rgb, _ = _garment()
    Image.fromarray(rgb).save(tmp_path / "b.png")
    Image.fromarray(np.zeros((80, 60), np.uint8)).save(tmp_path / "empty.png")
    with pytest.raises(InputImageError, match="empty"):
        load_input(tmp_path / "b.png", tmp_path / "empty.png")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(InputImageError, match="mask is 10x10"):
        load_input(tmp_path / "b.png", tmp_path / "small.png")
    noisy = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    with pytest.raises(InputImageError, match="pass a mask"):
        load_input(tmp_path / "noisy.png")


def test_frame_centres_and_fills():
    rgb, mask = _garment()
    out, m = frame_input(rgb, mask, size=100, fill=0.8)
    rows, cols = np.nonzero(m)
    assert abs((rows.max() - rows.min() + 1) - 80) <= 2      # larger side (40 px) -> 80% of 100
    assert abs((rows.min() + rows.max()) / 2 - 49.5) <= 1.5
    assert abs((cols.min() + cols.max()) / 2 - 49.5) <= 1.5
    assert (out[~m] == 255).all()
