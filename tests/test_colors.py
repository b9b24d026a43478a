"""Vertex colours of reconstructed meshes from the input image, and the coloured outputs."""

import numpy as np
import trimesh

import meshes
from anchorudf.reconstruct.colors import colorize, image_colors, vertex_colors
from anchorudf.reconstruct.image import Reconstruction
from anchorudf.reconstruct.outputs import OUTPUT_NAMES, write_garment_outputs

RED, BLUE, WHITE = (220, 20, 20), (20, 20, 220), (255, 255, 255)


def _tube_and_image(size=128):
    """A closed-around open tube in NDC (radius 0.4, height 1) and its input image: the
    silhouette red on the left half, blue on the right, white background."""
    m = meshes.open_tube(0.4, 1.0, sections=64, rings=16)
    v, f = np.asarray(m.vertices, np.float64), np.asarray(m.faces)
    x = (np.arange(size) + 0.5) / size * 2 - 1
    y = 1 - (np.arange(size) + 0.5) / size * 2
    xx, yy = np.meshgrid(x, y)
    mask = (np.abs(xx) <= 0.4) & (np.abs(yy) <= 0.5)
    rgb = np.full((size, size, 3), WHITE, np.uint8)
    rgb[mask & (xx < 0)] = RED
    rgb[mask & (xx >= 0)] = BLUE
    return v, f, rgb, mask


def test_front_takes_the_image_colours_and_the_unseen_back_is_filled():
    v, f, rgb, mask = _tube_and_image()
    colors, seen = vertex_colors(v, f, rgb, mask)
    front, back = v[:, 2] > 0.05, v[:, 2] < -0.05
    assert seen[front].all() and not seen[back].any()   # the front hides the back
    left, right = v[:, 0] < -0.05, v[:, 0] > 0.05
    assert (colors[front & left] == RED).all() and (colors[front & right] == BLUE).all()
    # the back is never seen; it takes the colour of the nearest seen vertex along the
    # surface (around the rim): red on the left, blue on the right, never the background
    assert (colors[back & left] == RED).all() and (colors[back & right] == BLUE).all()
    assert not (colors == WHITE).all(axis=1).any()


def test_a_red_front_sheet_hides_a_sheet_behind_it():
    # two parallel squares; the image is red where they are, a different colour would show
    # through if the hidden one were treated as seen: its colour comes from the fill
    v = np.array([[-0.5, -0.5, 0.3], [0.5, -0.5, 0.3], [0.5, 0.5, 0.3], [-0.5, 0.5, 0.3],
                  [-0.5, -0.5, -0.3], [0.5, -0.5, -0.3], [0.5, 0.5, -0.3], [-0.5, 0.5, -0.3]])
    f = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    rgb = np.full((64, 64, 3), RED, np.uint8)
    colors, seen = vertex_colors(v, f, rgb)
    assert seen[:4].all() and not seen[4:].any()
    assert (colors == RED).all()   # a piece without a seen vertex: nearest seen one in space


def test_no_background_bleeds_in_at_the_silhouette():
    v, f, rgb, mask = _tube_and_image(64)
    colors, _ = vertex_colors(v, f, rgb, mask)
    rim = np.abs(np.abs(v[:, 0]) - 0.4) < 1e-6   # exactly on the silhouette's edge
    assert rim.any() and not (colors[rim] > 200).all(axis=1).any()
    # image_colors (no visibility): same pixels
    assert (image_colors(v[v[:, 2] > 0.05], rgb, mask) == colors[v[:, 2] > 0.05]).all()


def test_colorize_without_mesh_and_degenerate_inputs():
    rec = Reconstruction(np.zeros((5, 3), np.float32), np.zeros((2, 3), np.float32),
                         np.zeros((0, 3)), np.zeros((0, 3), np.int64))
    assert colorize(rec, np.zeros((8, 8, 3), np.uint8)).mesh_colors is None
    c, seen = vertex_colors(np.zeros((3, 3)), np.zeros((0, 3), int), np.zeros((8, 8, 3), np.uint8))
    assert c.shape == (3, 3) and not seen.any()
    c, _ = vertex_colors(np.zeros((0, 3)), np.zeros((0, 3), int), np.zeros((8, 8, 3), np.uint8))
    assert c.shape == (0, 3)


def test_outputs_are_coloured_ply_and_glb_that_load_back(tmp_path):
    v, f, rgb, mask = _tube_and_image(64)
    rec = colorize(Reconstruction(v[:10].astype(np.float32), v[:3].astype(np.float32), v, f), rgb, mask)
    assert rec.mesh_colors.shape == (len(v), 3)
    (tmp_path / "mesh.glb").write_text("stale")
    written = write_garment_outputs(tmp_path, rec)
    assert {p.name for p in written} == set(OUTPUT_NAMES)
    glb = trimesh.load(tmp_path / "mesh.glb")
    mesh = glb.to_geometry() if isinstance(glb, trimesh.Scene) else glb
    assert mesh.visual.kind == "vertex" and len(mesh.vertices) == len(v)
    # same vertex order, same colours (glTF stores them as given)
    assert np.allclose(mesh.vertices, v, atol=1e-6)
    assert (mesh.visual.vertex_colors[:, :3] == rec.mesh_colors).all()
    ply = trimesh.load(tmp_path / "mesh.ply", process=False)
    assert (ply.visual.vertex_colors[:, :3] == rec.mesh_colors).all()
    # without colours: geometry only, and a later run without a mesh removes all mesh files
    write_garment_outputs(tmp_path, Reconstruction(v[:10], v[:3], v, f))
    assert trimesh.load(tmp_path / "mesh.ply", process=False).visual.kind != "vertex"
    write_garment_outputs(tmp_path, Reconstruction(v[:10], v[:3], np.zeros((0, 3)), np.zeros((0, 3), int)))
    assert not any((tmp_path / n).exists() for n in ("mesh.ply", "mesh.obj", "mesh.glb"))


def test_reconstruct_command_writes_a_coloured_glb_and_a_shaded_preview(tmp_path, monkeypatch):
    """`anchorudf reconstruct`'s outputs, with the network replaced by a known mesh."""
    from PIL import Image

    import anchorudf.models.checkpoint as checkpoint
    import anchorudf.reconstruct.image as image
    from anchorudf.config import load_params
    from anchorudf.reconstruct.run import run_reconstruct

    v, f, rgb, mask = _tube_and_image(64)
    monkeypatch.setattr(checkpoint, "load_model",
                        lambda path, device="cpu": (None, {"image_size": 64, "params": {"train": {"delta": 0.2}}}))
    monkeypatch.setattr(image, "reconstruct_image", lambda model, img, cfg, delta, device="cpu", mesh=True:
                        Reconstruction(v[:50].astype(np.float32), v[:3].astype(np.float32), v, f))
    Image.fromarray(rgb).save(tmp_path / "in.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    files = run_reconstruct(tmp_path / "in.png", tmp_path / "mask.png", tmp_path / "model", tmp_path / "out",
                            load_params(None, []))
    assert {p.name for p in files} == set(OUTPUT_NAMES) | {"preview.png"}
    mesh = trimesh.load(tmp_path / "out" / "mesh.glb").to_geometry()
    c = mesh.visual.vertex_colors[:, :3].astype(int)
    front = mesh.vertices[:, 2] > 0.05   # the input is reframed (larger side to render.fill),
    left, right = mesh.vertices[:, 0] < -0.05, mesh.vertices[:, 0] > 0.05  # the halves stay
    assert (np.abs(c[front & left] - RED).max(axis=1) < 10).mean() > 0.95
    assert (np.abs(c[front & right] - BLUE).max(axis=1) < 10).mean() > 0.95
    preview = np.asarray(Image.open(tmp_path / "out" / "preview.png").convert("RGB"))
    assert preview.shape[1] == 5 * 256   # input, image colours, front, side, back
    for k in range(1, 5):
        assert (preview[18:, 256 * k: 256 * (k + 1)] < 245).any(axis=-1).mean() > 0.02
