import numpy as np

from anchorudf.render.pictures import mesh_points, panel, splat


def test_splat_places_points_in_ndc():
    img = splat(np.array([[-0.9, 0.9, 0.0], [0.9, -0.9, 0.5]]), size=10,
                colors=np.array([[255, 0, 0], [0, 255, 0]], dtype=np.uint8))
    assert tuple(img[0, 0]) == (255, 0, 0)      # top-left: x=-1, y=+1
    assert tuple(img[9, 9]) == (0, 255, 0)      # bottom-right
    assert (img[5, 5] == 255).all()


def test_nearest_point_wins_and_side_view():
    pts = np.array([[0.0, 0.0, -0.5], [0.0, 0.0, 0.5]])
    cols = np.array([[255, 0, 0], [0, 0, 255]], dtype=np.uint8)
    assert tuple(splat(pts, 4, colors=cols)[2, 2]) == (0, 0, 255)
    # seen from the side (yaw 90) the two points separate along x
    side = splat(pts, 4, colors=cols, side=True)
    assert (side[2] != 255).any(axis=1).sum() == 2


def test_mesh_points_and_panel():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=float)
    p, n = mesh_points(v, np.array([[0, 1, 2]]), count=100)
    assert p.shape == (100, 3) and np.allclose(np.abs(n[:, 2]), 1)
    assert (p[:, :2].sum(axis=1) <= 1 + 1e-9).all()
    out = panel([np.zeros((8, 8, 3), np.uint8)] * 2, ["a", "b"], tile=32)
    assert out.shape == (50, 64, 3)
