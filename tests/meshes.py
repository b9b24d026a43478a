"""Small test meshes shared by several test files (pytest puts tests/ on sys.path)."""

import numpy as np

# Swaps Y and Z: turns trimesh's Z-axis revolution into a tube around +Y (a reflection;
# trimesh.creation.revolve flips the faces back so the normals still point outward).
_Z_TO_Y = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])


def open_tube(radius: float = 0.3, height: float = 0.8, sections: int = 12, rings: int = 4, *,
              up: str = "y", subdivisions: int = 0, noise: float = 0.0, seed: int = 0,
              colour: bool = False):
    """An open tube (no caps) centred on the origin, as a ``trimesh.Trimesh``.

    ``sections`` vertices around, ``rings`` rings of them along the ``up`` axis ("y" or "z"),
    outward normals; the vertex radius is exact. ``up="z", rings=2`` is exactly
    ``trimesh.creation.cylinder(radius, height, sections=sections)`` with its caps removed.
    Then ``subdivisions`` rounds of ``Trimesh.subdivide``; then, with
    ``rng = np.random.default_rng(seed)``, Gaussian ``noise`` (std, per coordinate) on the
    vertices and, if ``colour``, one random RGBA colour for all vertices (drawn after the noise).
    """
    import trimesh

    if up not in ("y", "z"):
        raise ValueError(f"up must be 'y' or 'z', got {up!r}")
    profile = np.column_stack([np.full(rings, float(radius)), np.linspace(-height / 2, height / 2, rings)])
    m = trimesh.creation.revolve(profile, sections=sections, transform=_Z_TO_Y if up == "y" else None)
    for _ in range(subdivisions):
        m = m.subdivide()
    rng = np.random.default_rng(seed)
    if noise:
        m.vertices += rng.normal(0, noise, m.vertices.shape)
    if colour:
        m.visual.vertex_colors = np.tile(rng.integers(0, 255, 4, dtype=np.uint8), (len(m.vertices), 1))
    return m


def open_tube_arrays(*args, **kwargs):
    """:func:`open_tube` as plain arrays: (V, 3) float64 vertices and (F, 3) int64 faces."""
    m = open_tube(*args, **kwargs)
    return np.array(m.vertices, dtype=np.float64), np.array(m.faces, dtype=np.int64)
