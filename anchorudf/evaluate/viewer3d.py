"""The interactive 3D view of index.html: plotly figures of every evaluated garment, offline.

Per garment one plotly figure (view NDC: x right, y up, z towards the input camera; an
orthographic camera starts at the input view) with three traces, shown and hidden by
clicking their legend entries or with the buttons above the plot:

- ground truth (grey),
- the reconstruction in its colours from the input image (:mod:`anchorudf.reconstruct.colors`),
- the reconstruction coloured by its error (distance to the ground-truth surface, garment
  units, viridis on [0, error_max], with a colour bar).

Meshes are simplified to at most ``MAX_FACES`` faces (open3d's vertex clustering to about 4x
that, then its quadric decimation; each kept vertex takes the colour and error of the
nearest original vertex) so the page stays small;
a reconstruction without a mesh is shown as ``MAX_POINTS`` of its points. The page loads
``3d/plotly.min.js`` (plotly's own bundle, written next to index.html: no network) and
``3d/garments.js`` (``window.ANCHORUDF_3D = {"order": [...], "figures": {id: figure}}``,
arrays base64-encoded as plotly does; the error trace stores no geometry of its own, its
``meta.geometry_of`` names the trace whose vertices and faces the page copies into it);
one figure is drawn at a time (one WebGL context).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from anchorudf.utils.io import write_bytes, write_text

if TYPE_CHECKING:
    from anchorudf.evaluate.report import GarmentPictures

MAX_FACES = 2500
MAX_POINTS = 4000
ASSET_DIR = "3d"
GT_COLOR = "#a9b4c2"


def decimate(vertices: np.ndarray, faces: np.ndarray, max_faces: int = MAX_FACES
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, faces, nearest original vertex of each kept vertex) with at most ``max_faces``."""
    from scipy.spatial import cKDTree

    v = np.asarray(vertices, np.float64).reshape(-1, 3)
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    if len(f) <= max_faces:
        return v, f, np.arange(len(v))
    import open3d as o3d

    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f.astype(np.int32)))
    if len(f) > 4 * max_faces:  # vertex clustering first (fast) to ~4x the target, then quadric
        area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1).sum()
        if area > 0:
            m = m.simplify_vertex_clustering(voxel_size=float(np.sqrt(2.0 * area / (4 * max_faces))))
    m = m.simplify_quadric_decimation(target_number_of_triangles=int(max_faces))
    m.remove_unreferenced_vertices()
    dv, df = np.asarray(m.vertices, np.float64), np.asarray(m.triangles, np.int64)
    if len(df) == 0:  # decimation gave up: keep a uniform subset of the faces instead
        keep = np.linspace(0, len(f) - 1, max_faces).astype(np.int64)
        used, inv = np.unique(f[keep], return_inverse=True)
        return v[used], inv.reshape(-1, 3), used
    _, nearest = cKDTree(v).query(dv)
    return dv, df, np.asarray(nearest, np.int64)


def _hex(colors: np.ndarray) -> list[str]:
    return ["#%02x%02x%02x" % tuple(int(x) for x in c[:3]) for c in np.asarray(colors, np.uint8)]


def _mesh_trace(go, v, f, name: str, **kwargs):
    idx = np.uint16 if len(v) < 65536 else np.uint32
    return go.Mesh3d(x=v[:, 0].astype(np.float32), y=v[:, 1].astype(np.float32), z=v[:, 2].astype(np.float32),
                     i=f[:, 0].astype(idx), j=f[:, 1].astype(idx), k=f[:, 2].astype(idx), name=name,
                     showlegend=True, flatshading=False, hoverinfo="name",
                     lighting=dict(ambient=0.55, diffuse=0.6, specular=0.05, roughness=0.9, fresnel=0.05),
                     **kwargs)


def figure(gp: GarmentPictures, error_max: float, max_faces: int = MAX_FACES):
    """The plotly figure of one garment (see the module docstring)."""
    import plotly.graph_objects as go

    from anchorudf.reconstruct.colors import image_colors

    bar = dict(title=dict(text="distance to<br>ground truth<br>(garment units)", side="top"),
               len=0.6, thickness=14, x=1.0)
    gv, gf, _ = decimate(gp.gt_vertices, gp.gt_faces, max_faces)
    traces = [_mesh_trace(go, gv, gf, "ground truth", color=GT_COLOR, visible="legendonly")]
    if gp.has_mesh:
        rv, rf, near = decimate(gp.mesh_vertices, gp.mesh_faces, max_faces)
        traces += [_mesh_trace(go, rv, rf, "reconstruction (image colours)", vertexcolor=_hex(gp.mesh_colors[near])),
                   _mesh_trace(go, rv, rf, "error", intensity=gp.mesh_error[near].astype(np.float32),
                               colorscale="Viridis", cmin=0.0, cmax=float(error_max), colorbar=bar,
                               visible="legendonly")]
    else:
        pts, err = gp.points, gp.points_error
        if len(pts) > MAX_POINTS:
            keep = np.random.default_rng(0).choice(len(pts), MAX_POINTS, replace=False)
            pts, err = pts[keep], err[keep]
        xyz = dict(x=pts[:, 0].astype(np.float32), y=pts[:, 1].astype(np.float32), z=pts[:, 2].astype(np.float32),
                   mode="markers", hoverinfo="name")
        traces += [go.Scatter3d(name="reconstruction points (image colours)", **xyz,
                                marker=dict(size=2, color=_hex(image_colors(pts, gp.rgb, gp.mask)))),
                   go.Scatter3d(name="error of points", visible="legendonly", **xyz,
                                marker=dict(size=2, color=err.astype(np.float32), colorscale="Viridis", cmin=0.0,
                                            cmax=float(error_max), colorbar=bar))]
    n = len(traces)
    presets = [("reconstruction", [False, True, False]), ("ground truth", [True, False, False]),
               ("error", [False, False, True]), ("ground truth + reconstruction", [True, True, False])]
    buttons = [dict(label=label, method="restyle",
                    args=[{"visible": [True if on else "legendonly" for on in vis[:n]]}])
               for label, vis in presets]
    hidden = dict(visible=False, showbackground=False)
    layout = go.Layout(
        template="none", margin=dict(l=0, r=0, t=36, b=0), paper_bgcolor="white",
        title=dict(text=f"{gp.garment_id} ({gp.category}), input yaw {gp.yaw:g} deg", x=0.01, y=0.99,
                   font=dict(size=14)),
        legend=dict(title=dict(text="click to show / hide"), x=0.0, y=0.92, bgcolor="rgba(255,255,255,0.7)"),
        updatemenus=[dict(type="buttons", direction="right", x=0.99, xanchor="right", y=1.0, yanchor="top",
                          pad=dict(r=2, t=2), buttons=buttons, showactive=False)],
        scene=dict(aspectmode="data", xaxis=hidden, yaxis=hidden, zaxis=hidden,
                   camera=dict(eye=dict(x=0.0, y=0.0, z=2.2), up=dict(x=0.0, y=1.0, z=0.0),
                               center=dict(x=0.0, y=0.0, z=0.0), projection=dict(type="orthographic"))),
        uirevision="keep")
    return go.Figure(data=traces, layout=layout)


GEOMETRY = ("x", "y", "z", "i", "j", "k")


def _figure_json(fig) -> str:
    """The figure's JSON, the error trace's geometry replaced by a reference to the
    reconstruction trace with the same geometry (the page restores it)."""
    d = json.loads(fig.to_json())
    traces = d["data"]
    for n, t in enumerate(traces):
        for m in range(n):
            if t.get("type") == "mesh3d" and all(t.get(k) == traces[m].get(k) for k in GEOMETRY):
                for k in GEOMETRY:
                    del t[k]
                t["meta"] = {"geometry_of": m}
                break
    return json.dumps(d, separators=(",", ":"))


def write_viewer_assets(out_dir: Path, garments: list[GarmentPictures], error_max: float,
                        max_faces: int = MAX_FACES) -> list[Path]:
    """``out_dir/3d/plotly.min.js`` and ``out_dir/3d/garments.js``; returns their paths."""
    from plotly.offline import get_plotlyjs

    folder = Path(out_dir) / ASSET_DIR
    js = folder / "plotly.min.js"
    lib = get_plotlyjs().encode("utf-8")
    if not js.is_file() or js.read_bytes() != lib:
        write_bytes(js, lib)
    order = [g.garment_id for g in garments]
    figs = ",\n".join(f"{json.dumps(g.garment_id)}: {_figure_json(figure(g, error_max, max_faces))}"
                       for g in garments)
    data = folder / "garments.js"
    write_text(data, "// anchorudf evaluate: 3D figures of the evaluated garments (plotly JSON)\n"
                     f"window.ANCHORUDF_3D = {{\"order\": {json.dumps(order)}, \"figures\": {{\n{figs}\n}}}};\n")
    return [js, data]


def viewer_section() -> str:
    """The HTML of the 3D view (a garment selector and one plot), for index.html."""
    return f"""<h2 id="view3d">3D view</h2>
<p>Drag to turn, scroll to zoom. Ground truth, the reconstruction in its image colours and its
error are toggled by clicking their legend entries (or the buttons); the view starts at the
input camera (view coordinates: x right, y up, z towards the camera).
Garment: <select id="garment3d"></select></p>
<div id="viewer3d"></div>
<script src="{ASSET_DIR}/plotly.min.js"></script>
<script src="{ASSET_DIR}/garments.js"></script>
<script>
(function () {{
  var box = document.getElementById('viewer3d'), sel = document.getElementById('garment3d');
  var data = window.ANCHORUDF_3D;
  if (typeof Plotly === 'undefined' || !data) {{
    box.textContent = 'The 3D view needs {ASSET_DIR}/plotly.min.js and {ASSET_DIR}/garments.js next to this page.';
    return;
  }}
  data.order.forEach(function (id) {{
    var o = document.createElement('option'); o.value = id; o.textContent = id; sel.appendChild(o);
  }});
  window.show3d = function (id) {{
    if (!data.figures[id]) return;
    sel.value = id;
    var fig = data.figures[id];
    fig.data.forEach(function (t) {{
      var src = t.meta && fig.data[t.meta.geometry_of];
      if (src) ['x', 'y', 'z', 'i', 'j', 'k'].forEach(function (k) {{
        if (!(k in t)) t[k] = (src[k] && src[k].bdata) ? Object.assign({{}}, src[k]) : src[k];
      }});
    }});
    return Plotly.react(box, fig.data, fig.layout, {{responsive: true, displaylogo: false}}).then(function () {{
      box.setAttribute('data-drawn', id);
    }});
  }};
  sel.addEventListener('change', function () {{ window.show3d(sel.value); }});
  if (data.order.length) window.show3d(data.order[0]);
}})();
</script>"""
