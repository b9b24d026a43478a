import meshes
import numpy as np
import trimesh

from anchorudf.geometry.topology import boundary_loops
from anchorudf.reconstruct.holes import fill_small_holes


def grid_sheet(n=8):
    xs = np.linspace(0, 1, n + 1)
    v = np.array([[x, y, 0.0] for y in xs for x in xs])
    f = []
    for j in range(n):
        for i in range(n):
            a = j * (n + 1) + i
            f += [[a, a + 1, a + n + 2], [a, a + n + 2, a + n + 1]]
    return v, np.array(f)


def test_pin_hole_closed_outer_boundary_kept():
    v, f = grid_sheet(8)
    centre = 4 * 9 + 4
    holed = f[~(f == centre).any(axis=1)]  # remove the 6 faces around an interior vertex
    assert boundary_loops(holed) == 2
    v2, f2 = fill_small_holes(v, holed, max_edges=12)
    assert boundary_loops(f2) == 1                      # only the sheet's outline (32 edges) is left
    assert len(f2) == len(holed) + 6 and len(v2) == len(v) + 1
    assert np.allclose(v2[-1], v[centre])               # the fan's centre is the hole's centroid
    assert trimesh.Trimesh(v2, f2, process=False).is_winding_consistent
    # a threshold below the hole's size changes nothing
    v3, f3 = fill_small_holes(v, holed, max_edges=5)
    assert len(f3) == len(holed) and len(v3) == len(v)


def test_open_cylinder_rims_stay_open():
    v, f = meshes.open_tube_arrays(sections=16, rings=4)
    v2, f2 = fill_small_holes(v, f, max_edges=12)
    assert boundary_loops(f2) == 2 and len(f2) == len(f)
    v3, f3 = fill_small_holes(v, f, max_edges=16)      # a threshold above the rims closes them
    assert boundary_loops(f3) == 0
    assert trimesh.Trimesh(v3, f3, process=False).is_winding_consistent
