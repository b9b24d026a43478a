"""Silhouette input channels (model.silhouette_input): the distance kernel against SciPy's
exact transform, the mask read back off a masked image, and the model's use of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from anchorudf.config import ModelConfig
from anchorudf.data.images import image_tensors
from anchorudf.models.anchorudf import AnchorUDF
from anchorudf.models.silhouette import CAP_NDC, SCALE_NDC, erosion_distance, image_mask, silhouette_channels

TINY = dict(stacks=1, depth=1, channels=8, grid=8, pos_channels=4, decoder=[32, 16])


def blob(size=128) -> np.ndarray:
    """A disk, a bar touching it and a small square: round, straight and thin parts."""
    yy, xx = np.mgrid[:size, :size] * (128 / size)
    return (((xx - 60) ** 2 + (yy - 70) ** 2 < 35 ** 2) | ((np.abs(xx - 30) < 8) & (np.abs(yy - 40) < 30))
            | ((np.abs(xx - 110) < 3) & (np.abs(yy - 110) < 3)))


def edt(mask: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance to the nearest background pixel, the border as background."""
    return distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]


def test_erosion_distance_follows_the_exact_transform():
    m = blob()
    ref = edt(m)
    d = erosion_distance(torch.from_numpy(m)[None, None].float(), 80)[0, 0].numpy()
    assert (d[~m] == 0).all() and (d[m] >= 1).all()
    edge = m & (ref == 1)  # 4-neighbours of the background: distance 1 exactly
    assert (d[edge] == 1).all()
    far = ref >= 2
    ratio = d[far] / ref[far]
    assert ratio.min() > 0.83 and ratio.max() < 1.07
    deep = ref >= 4
    assert (d[deep] / ref[deep]).min() > 0.85
    # Monotone in the exact distance on the whole: the deepest pixel is the disk's centre.
    assert np.unravel_index(d.argmax(), d.shape) == np.unravel_index(ref.argmax(), ref.shape) or \
        ref[np.unravel_index(d.argmax(), d.shape)] >= ref.max() - 1.5


def test_erosion_distance_treats_the_border_as_background_and_caps():
    m = np.ones((20, 30), bool)
    d = erosion_distance(torch.from_numpy(m)[None, None].float(), 4)[0, 0].numpy()
    assert d[0].max() == 1 and d[:, 0].max() == 1 and d[-1].max() == 1
    assert d.max() == 5  # capped at iterations + 1
    np.testing.assert_array_equal(d[:5, 5:25], np.minimum(edt(m)[:5, 5:25], 5))


def test_channels_are_in_ndc_whatever_the_image_size():
    """The same silhouette at 64 and 128 px: the same distances in NDC (to a pixel)."""
    out = {}
    for size in (64, 128):
        m = blob(size)
        img = torch.from_numpy(np.stack([m * 0.5] * 3)).float()[None]
        ch = silhouette_channels(img)
        assert ch.shape == (1, 2, size, size)
        np.testing.assert_array_equal(ch[0, 0].numpy(), m.astype(np.float32))
        out[size] = ch[0, 1].numpy()
    coarse = out[128].reshape(64, 2, 64, 2).mean(axis=(1, 3))
    inside = blob(64) & (coarse > 0)
    assert np.abs(coarse[inside] - out[64][inside]).max() < 2 * (2 / 64) / SCALE_NDC
    assert out[128].max() <= CAP_NDC / SCALE_NDC + 1e-6


def test_masked_image_keeps_its_mask_even_for_black_cloth():
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, 8:] = 200  # white-ish background that the mask removes
    rgb[4:10, 2:12] = [30, 0, 90]
    rgb[6, 6] = 0  # a pure black garment pixel
    mask = np.zeros((16, 16), bool)
    mask[4:10, 2:12] = True
    img, m = image_tensors(rgb, mask)
    np.testing.assert_array_equal(image_mask(img[None])[0, 0].numpy(), mask.astype(np.float32))
    torch.testing.assert_close(img[:, 6, 6], torch.full((3,), 1 / 255))
    torch.testing.assert_close(img[:, 5, 5], torch.tensor([30, 0, 90]) / 255.0)  # other pixels unchanged
    assert img[:, ~torch.from_numpy(mask)].abs().max() == 0


def test_model_reads_the_silhouette_channels():
    torch.manual_seed(0)
    model = AnchorUDF(ModelConfig(**TINY, silhouette_input=True), 10, 32).eval()
    assert model.encoder.stem[0].in_channels == 5
    plain = AnchorUDF(ModelConfig(**TINY), 10, 32)
    assert plain.encoder.stem[0].in_channels == 3
    m = torch.from_numpy(blob(32)).float()
    image = m.expand(1, 3, 32, 32) * 0.5
    x = model.encoder_input(image)
    torch.testing.assert_close(x[:, :3], image)
    torch.testing.assert_close(x[:, 3:], silhouette_channels(image))
    # The distance channel reaches the features: same pixels, other silhouette depth.
    stem = model.encoder.stem[0]
    with torch.no_grad():
        stem.weight[:, :4] = 0  # only the distance channel is seen
        f1 = model.encode(image).features[-1]
        thin = image.clone()
        thin[:, :, :, 16] = 0  # cut the shape in two: distances change, few pixels do
        f2 = model.encode(thin).features[-1]
    assert (f1 - f2).abs().max() > 1e-4
    points = torch.rand(1, 20, 3) * 2 - 1
    out = model(image, points, with_grad=True)
    assert out["udf"][-1].shape == (1, 20) and torch.isfinite(out["grad"]).all()


@pytest.mark.parametrize("flag", [False, True])
def test_saved_config_round_trip(tmp_path, flag):
    """A model folder records the flag; configs written before it load as False."""
    from dataclasses import asdict

    cfg = ModelConfig(**TINY, silhouette_input=flag)
    data = asdict(cfg)
    assert ModelConfig(**data).silhouette_input is flag
    data.pop("silhouette_input")
    assert ModelConfig(**data).silhouette_input is False
