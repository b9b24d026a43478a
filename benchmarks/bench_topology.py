"""Time the mesh-topology kernels that meshing and the topology metrics run per view,
against the implementations they replaced, measured in the same run.

Run: ``python benchmarks/bench_topology.py`` (about 1 min on 2 cores; ``--side`` sets the
sheet's size).

1. ``unique_rows`` (rows packed into one int64 key, 1-D ``np.unique``) against
   ``np.unique(axis=0)`` on the sorted edges of a triangulated ``side`` x ``side`` sheet;
   both outputs are checked equal.
2. ``_simple_loops`` of ``anchorudf.reconstruct.holes`` against the walk it replaced
   (which could run once around the whole boundary per start vertex) on the same sheet
   with a tenth of its faces torn out, as a shredded learned mesh is; outputs checked equal.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def sheet_faces(side: int) -> np.ndarray:
    """(2 (side-1)^2, 3) triangles of a side x side vertex grid."""
    i, j = np.meshgrid(np.arange(side - 1), np.arange(side - 1), indexing="ij")
    v = (i * side + j).ravel()
    return np.concatenate([np.c_[v, v + 1, v + side], np.c_[v + 1, v + side + 1, v + side]])


def old_simple_loops(faces: np.ndarray) -> list[list[int]]:
    """The walk before the fix: it stopped only at its start, a dead end or after as many
    steps as there are boundary edges."""
    from anchorudf.geometry.topology import boundary_half_edges

    bhe = boundary_half_edges(faces)
    degree = np.bincount(bhe.ravel())
    nxt = dict(zip(bhe[:, 0].tolist(), bhe[:, 1].tolist()))
    seen: set[int] = set()
    loops = []
    for start in sorted(nxt):
        if start in seen:
            continue
        loop, cur, simple = [start], nxt.get(start), degree[start] == 2
        while cur is not None and cur != start and len(loop) <= len(bhe):
            simple &= degree[cur] == 2
            loop.append(cur)
            cur = nxt.get(cur)
        seen.update(loop)
        if cur == start and simple and len(loop) >= 3:
            loops.append(loop)
    return loops


def timed(fn, *args, repeat: int = 3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    from anchorudf.geometry.topology import face_edges, unique_rows
    from anchorudf.reconstruct.holes import _simple_loops

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=160)
    args = ap.parse_args()
    faces = sheet_faces(args.side)
    edges = np.sort(face_edges(faces), axis=1)
    t_new, new = timed(lambda e: unique_rows(e, return_inverse=True, return_counts=True), edges)
    t_old, old = timed(lambda e: np.unique(e, axis=0, return_inverse=True, return_counts=True), edges)
    assert np.array_equal(new[0], old[0]) and np.array_equal(new[1], np.ravel(old[1])) and np.array_equal(new[2], old[2])
    print(f"unique rows of {len(edges)} edges: {1e3 * t_new:.1f} ms, np.unique(axis=0) {1e3 * t_old:.1f} ms "
          f"({t_old / t_new:.1f}x)")
    torn = faces[np.random.default_rng(0).random(len(faces)) > 0.1]
    t_new, new = timed(_simple_loops, torn)
    t_old, old = timed(old_simple_loops, torn, repeat=1)
    assert new == old
    print(f"simple loops of a torn {args.side}^2 sheet ({len(new)} loops): {1e3 * t_new:.1f} ms, "
          f"the walk it replaced {1e3 * t_old:.1f} ms ({t_old / t_new:.0f}x)")


if __name__ == "__main__":
    main()
