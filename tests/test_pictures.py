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


def test_colormap_is_viridis_clipped_and_colorbar_draws():
    from anchorudf.render.pictures import colorbar, colormap

    c = colormap(np.array([0.0, 0.05, 0.1, np.nan, -1.0]), vmax=0.05)
    assert tuple(c[0]) == (0x44, 0x01, 0x54) and tuple(c[1]) == (0xfd, 0xe7, 0x25)
    assert tuple(c[2]) == tuple(c[1]) and tuple(c[4]) == tuple(c[0])   # clipped at both ends
    assert tuple(c[3]) == (160, 160, 160)                               # NaN: grey
    bar = colorbar(192, 192, 0.05, "distance")
    assert bar.shape == (192, 192, 3)
    col = bar[40:180, 18]  # inside the bar: yellow at the top, purple at the bottom
    assert col[0, 1] > 200 and col[-1, 1] < 40


def _slab():
    """Two squares in NDC: the front one (z=0.3) on the right half, the back one (z=-0.3) on
    the left half."""
    v = np.array([[0.1, -0.5, 0.3], [0.7, -0.5, 0.3], [0.7, 0.5, 0.3], [0.1, 0.5, 0.3],
                  [-0.7, -0.5, -0.3], [-0.1, -0.5, -0.3], [-0.1, 0.5, -0.3], [-0.7, 0.5, -0.3]])
    f = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    return v, f


def test_render_mesh_lines_up_with_ndc_and_turns():
    from anchorudf.render.shaded import render_mesh

    v, f = _slab()
    colors = np.array([[255, 0, 0]] * 4 + [[0, 0, 255]] * 4, np.uint8)
    front = render_mesh(v, f, colors, size=64, lit=False)
    assert front.shape == (64, 64, 3)
    assert tuple(front[32, 44]) == (255, 0, 0) and tuple(front[32, 20]) == (0, 0, 255)
    assert tuple(front[2, 2]) == (255, 255, 255)            # background
    # from the back (180 degrees) left and right swap
    back = render_mesh(v, f, colors, size=64, yaw=180, lit=False)
    assert tuple(back[32, 44]) == (0, 0, 255) and tuple(back[32, 20]) == (255, 0, 0)
    # from the side (90 degrees) the front (z > 0) is on the left, the back on the right; the
    # squares are seen edge-on, so at most a thin line of each
    side = render_mesh(v, f, colors, size=64, yaw=90, lit=False)
    assert (side != 255).any(axis=2).sum() < 64 * 4
    # lit: shaded, never brighter than the colour, same coverage
    lit = render_mesh(v, f, colors, size=64)
    assert ((lit != 255).any(axis=2) == (front != 255).any(axis=2)).all()
    assert lit[32, 44, 0] <= 255 and lit[32, 44, 0] > 60
    # a mesh without faces is the background
    assert (render_mesh(v, np.zeros((0, 3), int), size=16) == 255).all()


def test_render_depth_gives_the_front_surface():
    from anchorudf.render.shaded import render_depth

    v, f = _slab()
    d = render_depth(v, f, 64, 32)
    assert d.shape == (32, 64)
    assert abs(d[16, 44] - 0.3) < 1e-3 and abs(d[16, 20] + 0.3) < 1e-3
    assert np.isnan(d[1, 1])
    # overlapping: the nearer square wins
    v2 = v.copy()
    v2[:4, 0] -= 0.8    # front square now covers x in [-0.7, -0.1] as well
    d2 = render_depth(v2, f, 64, 32)
    assert abs(d2[16, 20] - 0.3) < 1e-3
