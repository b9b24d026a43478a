"""Small test meshes shared by several test files (pytest puts tests/ on sys.path)."""

import numpy as np


def open_cylinder(sections: int = 12, rings: int = 4, radius: float = 0.3, half_height: float = 0.4):
    """(V, 3) vertices and (F, 3) faces of an open tube around +Y (no caps)."""
    ang = np.linspace(0, 2 * np.pi, sections, endpoint=False)
    ys = np.linspace(-half_height, half_height, rings)
    v = np.array([[radius * np.cos(t), y, radius * np.sin(t)] for y in ys for t in ang])
    f = []
    for r in range(rings - 1):
        for s in range(sections):
            i, j = r * sections + s, r * sections + (s + 1) % sections
            f += [[i, j, i + sections], [j, j + sections, i + sections]]
    return v, np.array(f)
