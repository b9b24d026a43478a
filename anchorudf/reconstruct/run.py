"""One user image -> points, a coloured mesh, anchors and a preview (behind ``anchorudf reconstruct``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anchorudf.config import Params
from anchorudf.reconstruct.inputs import InputImageError, frame_input, load_input

__all__ = ["InputImageError", "run_reconstruct"]


def run_reconstruct(image: Path, mask: Path | None, checkpoint: Path, out: Path, p: Params,
                    mesh: bool = True) -> list[Path]:
    """Reconstruct ``image`` with the model at ``checkpoint``; returns the files written.

    Outputs are in the NDC of the framed input (x right, y up, z towards the camera; the
    garment's larger silhouette side spans ``render.fill`` of [-1, 1]). ``out`` is checked
    for writability first; our files left there by an earlier run (``mesh.*`` after
    ``--no-mesh``, ...) are removed, other files are kept and not listed. The mesh's
    vertices carry colours from the framed input image (``mesh.ply``, ``mesh.glb``);
    ``preview.png`` shows the input, the coloured mesh and the shaded mesh from the front,
    the side and the back (point splats when there is no mesh).
    """
    from anchorudf.data.images import image_tensors
    from anchorudf.models.checkpoint import load_model
    from anchorudf.reconstruct.colors import colorize
    from anchorudf.reconstruct.image import reconstruct_image
    from anchorudf.reconstruct.outputs import remove_outputs, write_garment_outputs
    from anchorudf.render.pictures import panel, save_png, splat
    from anchorudf.render.shaded import render_mesh
    from anchorudf.utils.device import resolve_device_type
    from anchorudf.utils.io import ensure_writable_dir

    out = ensure_writable_dir(out, keep=False)   # fails now, not after the work; leaves nothing
    device = resolve_device_type(p.train.device)
    model, meta = load_model(checkpoint, device=device)
    size = int(meta["image_size"])
    rgb, m = load_input(Path(image), Path(mask) if mask else None)
    rgb, m = frame_input(rgb, m, size, fill=p.render.fill, background=tuple(p.render.background))
    img, _ = image_tensors(rgb, m)
    rec = reconstruct_image(model, img, p.evaluate, delta=float(meta["params"]["train"]["delta"]),
                            device=device, mesh=mesh)
    rec = colorize(rec, rgb, m, backend=p.render.backend)
    remove_outputs(out, ("preview.png",))
    written = write_garment_outputs(out, rec)
    tiles, titles = [np.where(m[..., None], rgb, 255)], ["input"]
    v, f, tile = rec.mesh_vertices, rec.mesh_faces, 256
    if len(f):
        tiles.append(render_mesh(v, f, rec.mesh_colors, size=tile, ambient=0.6, backend=p.render.backend))
        titles.append("mesh, image colours")
        for yaw, tag in ((0, "front"), (90, "side"), (180, "back")):
            tiles.append(render_mesh(v, f, size=tile, yaw=yaw, backend=p.render.backend))
            titles.append(f"mesh ({tag})")
    else:
        for side in (False, True):
            tiles.append(splat(rec.points, tile, side=side))
            titles.append(f"points ({'side' if side else 'front'})")
    save_png(out / "preview.png", panel(tiles, titles, tile))
    return sorted(written + [out / "preview.png"])
