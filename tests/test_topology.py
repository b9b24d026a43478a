"""Edge enumeration (one function for every site) and the boundary helpers built on it."""

import numpy as np
import pytest

from anchorudf.geometry.topology import (boundary_edges, boundary_half_edges, face_components, face_edges,
                                         unique_edges, unique_rows)


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


# --- non-manifold edges and vertices, pieces, boundary length: against slow references ---

from anchorudf.geometry.topology import (boundary_length, connected_pieces, corner_fans,  # noqa: E402
                                         mesh_topology, nonmanifold_edges, nonmanifold_vertices,
                                         split_nonmanifold_vertices)


def _ref_edge_faces(f):
    count = {}
    for tri in f.tolist():
        for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
            key = (min(a, b), max(a, b))
            count[key] = count.get(key, 0) + 1
    return count


def _ref_nonmanifold_edges(f):
    return sorted(e for e, c in _ref_edge_faces(f).items() if c > 2)


def _ref_fans(f, v):
    """Groups of the faces around vertex v, joined through edges that contain v."""
    around = [i for i, tri in enumerate(f.tolist()) if v in tri]
    groups, left = [], set(around)
    while left:
        stack, group = [left.pop()], set()
        while stack:
            i = stack.pop()
            group.add(i)
            for j in list(left):
                shared = set(f[i].tolist()) & set(f[j].tolist())
                if v in shared and len(shared) >= 2:
                    left.remove(j)
                    stack.append(j)
        groups.append(group)
    return groups


def _ref_nonmanifold_vertices(f):
    bad = {int(x) for e in _ref_nonmanifold_edges(f) for x in e}
    for v in np.unique(f).tolist():
        if len(_ref_fans(f, v)) > 1:
            bad.add(v)
    return sorted(bad)


def _ref_pieces(f):
    parent = list(range(len(f)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner = {}
    for i, tri in enumerate(f.tolist()):
        for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
            key = (min(a, b), max(a, b))
            if key in owner:
                parent[find(i)] = find(owner[key])
            else:
                owner[key] = i
    return len({find(i) for i in range(len(f))})


def _ref_boundary_length(v, f):
    return sum(float(np.linalg.norm(v[a] - v[b])) for (a, b), c in _ref_edge_faces(f).items() if c == 1)


BOWTIE = np.array([[0, 1, 2], [0, 3, 4]])           # two triangles touching at vertex 0
FIN = np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]])   # three triangles on edge 0-1
STRIP = np.array([[0, 1, 2], [2, 1, 3]])            # a manifold quad


def test_nonmanifold_kernels_on_named_meshes():
    assert nonmanifold_edges(STRIP).shape == (0, 2) and len(nonmanifold_vertices(STRIP)) == 0
    assert len(nonmanifold_edges(BOWTIE)) == 0 and nonmanifold_vertices(BOWTIE).tolist() == [0]
    assert nonmanifold_edges(FIN).tolist() == [[0, 1]] and nonmanifold_vertices(FIN).tolist() == [0, 1]
    fans = corner_fans(BOWTIE)
    assert fans[0, 0] != fans[1, 0]                  # vertex 0: one fan per triangle
    assert connected_pieces(BOWTIE) == 2 and connected_pieces(STRIP) == 1
    assert connected_pieces(np.zeros((0, 3), np.int64)) == 0
    assert len(nonmanifold_vertices(np.zeros((0, 3), np.int64))) == 0


@pytest.mark.parametrize("seed", range(12))
def test_topology_kernels_match_slow_references(seed):
    rng = np.random.default_rng(seed)
    f = _faces(n=int(rng.integers(5, 30)), nv=int(rng.integers(6, 14)), seed=seed)
    v = rng.normal(size=(int(f.max()) + 1, 3))
    assert [tuple(e) for e in nonmanifold_edges(f).tolist()] == _ref_nonmanifold_edges(f)
    assert nonmanifold_vertices(f).tolist() == _ref_nonmanifold_vertices(f)
    assert connected_pieces(f) == _ref_pieces(f)
    assert boundary_length(v, f) == pytest.approx(_ref_boundary_length(v, f))
    topo = mesh_topology(v, f)
    assert topo["nonmanifold_edges"] == len(_ref_nonmanifold_edges(f))
    assert topo["pieces"] == _ref_pieces(f)


@pytest.mark.parametrize("seed", range(8))
def test_split_nonmanifold_vertices_leaves_one_fan_per_vertex(seed):
    # Random meshes whose edges are manifold: pieces of a grid, glued at corners.
    import meshes

    rng = np.random.default_rng(seed)
    v, f = meshes.open_tube_arrays(sections=8, rings=3)
    f = f[rng.random(len(f)) < 0.6]                   # holes, bow-ties, loose pieces
    assert len(nonmanifold_edges(f)) == 0
    fans = sum(len(_ref_fans(f, x)) for x in np.unique(f).tolist())
    v2, f2 = split_nonmanifold_vertices(v, f)
    assert len(nonmanifold_vertices(f2)) == 0
    assert len(np.unique(f2)) == fans                 # one vertex per fan
    np.testing.assert_array_equal(v2[f2], v[f])       # same triangles, same winding
    assert np.array_equal(v2[:len(v)], v)
    assert connected_pieces(f2) == connected_pieces(f)
    vb, fb = split_nonmanifold_vertices(np.eye(5, 3), BOWTIE)
    assert len(vb) == 6 and len(nonmanifold_vertices(fb)) == 0 and fb.tolist() == [[0, 1, 2], [5, 3, 4]]


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint32, np.int16])
@pytest.mark.parametrize("cols", [1, 2, 3])
def test_unique_rows_equals_rowwise_np_unique(dtype, cols):
    """The packed-key unique gives np.unique(axis=0)'s rows, first indices, inverse and
    counts exactly, negative values and repeated rows included."""
    rng = np.random.default_rng(cols)
    low = 0 if np.dtype(dtype).kind == "u" else -50
    a = rng.integers(low, 60, size=(500, cols)).astype(dtype)
    a = np.concatenate([a, a[::7]])  # repeated rows, out of order
    want = np.unique(a, axis=0, return_index=True, return_inverse=True, return_counts=True)
    got = unique_rows(a, return_index=True, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[0].dtype == a.dtype
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], np.asarray(want[2]).ravel())
    np.testing.assert_array_equal(got[3], want[3])
    np.testing.assert_array_equal(unique_rows(a), want[0])
    _, inv = unique_rows(a, return_inverse=True)
    np.testing.assert_array_equal(got[0][inv], a)


def test_unique_rows_falls_back_where_keys_would_overflow():
    """Ranges too wide for one int64 key (and float rows) take np.unique(axis=0) itself."""
    a = np.array([[0, 2 ** 40, 0], [5, 0, 2 ** 40], [0, 2 ** 40, 0]], dtype=np.int64)
    np.testing.assert_array_equal(unique_rows(a), np.unique(a, axis=0))
    f = np.array([[0.5, 1.0], [0.5, 1.0], [-1.0, 2.0]])
    u, c = unique_rows(f, return_counts=True)
    np.testing.assert_array_equal(u, [[-1.0, 2.0], [0.5, 1.0]])
    np.testing.assert_array_equal(c, [1, 2])
    assert unique_rows(np.zeros((0, 2), dtype=np.int64)).shape == (0, 2)
