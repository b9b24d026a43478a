import numpy as np
import pytest

from anchorudf.geometry.camera import (calib_scale, make_calib, ndc_to_pixel, project, unproject,
                                       view_scale, yaw_rotation)


def test_yaw_zero_is_identity_frame():
    c = make_calib(0.0, 2.0)
    p = np.array([[0.1, 0.2, 0.3]])
    assert np.allclose(project(c, p), 2.0 * p)


def test_yaw_direction_front_and_side():
    # Front (+Z) faces the camera (towards +z in NDC) at yaw 0 and away at 180;
    # the garment's +X side faces the camera at yaw 90.
    front, side = np.array([[0, 0, 0.5]]), np.array([[0.5, 0, 0]])
    assert project(make_calib(0, 1), front)[0, 2] > 0.49
    assert project(make_calib(180, 1), front)[0, 2] < -0.49
    assert project(make_calib(90, 1), side)[0, 2] > 0.49
    # rotations are proper (no mirror) and keep +Y up
    for yaw in (0, 37, 90, 200):
        r = yaw_rotation(yaw)
        assert np.isclose(np.linalg.det(r), 1.0)
        assert np.allclose(r[1], [0, 1, 0])


def test_similarity_scale_and_roundtrip():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.5, 0.5, (100, 3))
    c = make_calib(40.0, 1.7, center=np.array([0.01, -0.02, 0.03]))
    assert np.isclose(calib_scale(c), 1.7)
    q = project(c, pts)
    assert np.allclose(unproject(c, q), pts)
    # distances scale by k on every axis
    d0 = np.linalg.norm(pts[1:] - pts[:-1], axis=1)
    d1 = np.linalg.norm(q[1:] - q[:-1], axis=1)
    assert np.allclose(d1, 1.7 * d0)


def test_view_scale_fits_all_yaws():
    rng = np.random.default_rng(1)
    v = rng.uniform(-0.5, 0.5, (500, 3)) * np.array([1.0, 0.6, 0.3])
    k = view_scale(v, fill=0.88)
    for yaw in range(0, 360, 15):
        q = project(make_calib(yaw, k), v)
        assert np.abs(q[:, :2]).max() <= 0.88 + 1e-9
    with pytest.raises(ValueError):
        view_scale(np.zeros((3, 3)))


def test_pixel_convention():
    # NDC (-1, 1) is the top-left corner of pixel (0, 0); y up means row 0 at the top.
    px = ndc_to_pixel(np.array([[-1.0, 1.0, 0], [1.0, -1.0, 0], [0, 0, 0]]), 4, 4)
    assert np.allclose(px, [[-0.5, -0.5], [3.5, 3.5], [1.5, 1.5]])
