"""Edge enumeration (one function for every site) and the boundary helpers built on it."""

import numpy as np
import pytest

from anchorudf.geometry.topology import (boundary_edges, boundary_half_edges, face_components, face_edges,
                                         unique_edges)


def _faces(n=40, nv=25, seed=0, dtype=np.int64):
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(nv)[:3] for _ in range(n)]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_face_edges_orders_match_the_two_spellings_they_replace(dtype):
    f = _faces(dtype=dtype)
    corner = face_edges(f)
    assert corner.dtype == dtype
    assert np.array_equal(corner, np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]))
    face = face_edges(f, order="face")
    assert face.dtype == dtype
    assert np.array_equal(face, np.stack([f, np.roll(f, -1, axis=1)], axis=2).reshape(-1, 2))
    q = _faces(nv=30, seed=1)[:, [0, 1, 2, 0]] + np.array([0, 0, 0, 30])  # quads
    assert np.array_equal(face_edges(q, order="face"), np.stack([q, np.roll(q, -1, axis=1)], axis=2).reshape(-1, 2))
    assert face_edges(np.zeros((0, 3), np.int64)).shape == (0, 2)
    with pytest.raises(ValueError, match="order"):
        face_edges(f, order="edge")


def test_boundary_helpers_on_a_strip():
    # Two triangles sharing edge 1-2: a quad 0-1-3-2 with 4 boundary edges, one piece.
    f = np.array([[0, 1, 2], [2, 1, 3]])
    assert np.array_equal(unique_edges(f), [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]])
    assert np.array_equal(boundary_edges(f), [[0, 1], [0, 2], [1, 3], [2, 3]])
    half = boundary_half_edges(f)  # directed, in winding, face_edges corner order
    assert [tuple(int(x) for x in e) for e in half] == [(0, 1), (1, 3), (2, 0), (3, 2)]
    assert np.array_equal(face_components(f), [0, 0])
