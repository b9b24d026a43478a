"""One user image -> points, mesh, anchors and a preview (behind ``anchorudf reconstruct``)."""

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
    ``--no-mesh``, ...) are removed, other files are kept and not listed.
    """
    from anchorudf.data.images import image_tensors
    from anchorudf.models.checkpoint import load_model
    from anchorudf.reconstruct.image import reconstruct_image
    from anchorudf.reconstruct.outputs import remove_outputs, write_garment_outputs
    from anchorudf.render.pictures import mesh_points, panel, save_png, splat
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
    remove_outputs(out, ("preview.png",))
    written = write_garment_outputs(out, rec)
    tiles, titles = [np.where(m[..., None], rgb, 255)], ["input"]
    mv, mn = mesh_points(rec.mesh_vertices, rec.mesh_faces, 60_000)
    for side in (False, True):
        tag = "side" if side else "front"
        tiles += [splat(rec.points, 256, side=side), splat(mv, 256, normals=mn, side=side)]
        titles += [f"points ({tag})", f"mesh ({tag})"]
    save_png(out / "preview.png", panel(tiles, titles, 256))
    return sorted(written + [out / "preview.png"])
