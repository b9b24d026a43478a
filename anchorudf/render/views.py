"""Offscreen orthographic views of one garment, in the calib convention of camera.py.

The scene lives in NDC: the mesh node's pose is the view's ``calib`` (a similarity of the
garment frame), the orthographic camera looks down NDC ``-z`` from ``z = CAMERA_Z`` with
``xmag = ymag = 1``, so NDC ``x, y`` in [-1, 1] span the image exactly and pixel ``(u, v)``
sees NDC ``(x, y)`` as in ``camera.ndc_to_pixel``. One directional light per view is fixed in
NDC (relative to the camera) and drawn from a per-view seeded RNG.

Both sides of the open surface are drawn: every face is duplicated with flipped winding and
negated normals (back faces are culled), so the inside seen through a neckline is lit too.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from anchorudf.errors import AnchorUDFError
from anchorudf.geometry.camera import make_calib, project, view_scale

if TYPE_CHECKING:
    from anchorudf.config import RenderConfig

CAMERA_Z = 2.0  # NDC z of the camera; the mesh lies in |z| <= fill <= 1
ZNEAR, ZFAR = 0.5, 3.5  # eye distances; cover NDC z in [-1.5, 1.5]
FALLBACK_RGB = (0.62, 0.60, 0.58)  # cloth-like grey for garments without colours
ROUGHNESS = 0.85


class RenderError(ValueError, AnchorUDFError):
    """A garment that cannot be rendered (degenerate, too large for the view, ...)."""


@dataclass
class RenderedView:
    """One rendered view in memory."""

    yaw: float  # degrees
    image: np.ndarray  # (H, W, 3) uint8, cfg.background outside the mask
    mask: np.ndarray  # (H, W) bool, true where the garment covers the pixel centre
    calib: np.ndarray  # (4, 4) float64, homogeneous garment frame -> NDC
    light: dict  # JSON-able description of the view's light
    depth: np.ndarray | None = None  # (H, W) float64 NDC z of the visible surface, NaN outside


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """Colour of black-body light (Tanner Helland's fit), scaled so the largest channel is 1."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = (99.4708025861 * np.log(t) - 161.1195681661 if t <= 66
         else 288.1221695283 * (t - 60) ** -0.0755148492)
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * np.log(t - 10) - 305.0447927307)
    rgb = np.clip([r, g, b], 1.0, 255.0)
    rgb = rgb / rgb.max()
    return tuple(round(float(c), 6) for c in rgb)


def random_light(rng: np.random.Generator) -> dict:
    """A random directional light in NDC (towards the camera's side) plus ambient.

    ``direction`` is the unit vector from the surface towards the light, in NDC: azimuth
    within +-75 degrees of the view axis, elevation -30..70 degrees; intensity 1.2-3.5,
    colour temperature 2700-9000 K (warm indoor to overcast sky), ambient 0.08-0.4.
    """
    azimuth = rng.uniform(-75.0, 75.0)
    elevation = rng.uniform(-30.0, 70.0)
    a, e = np.deg2rad(azimuth), np.deg2rad(elevation)
    direction = [np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)]
    kelvin = rng.uniform(2700.0, 9000.0)
    return {
        "direction": [round(float(c), 6) for c in direction],
        "azimuth_deg": round(float(azimuth), 4),
        "elevation_deg": round(float(elevation), 4),
        "intensity": round(float(rng.uniform(1.2, 3.5)), 4),
        "color_temperature_k": round(float(kelvin), 1),
        "color": list(kelvin_to_rgb(kelvin)),
        "ambient": round(float(rng.uniform(0.08, 0.4)), 4),
    }


def _light_pose(direction: list[float]) -> np.ndarray:
    """Pose whose -Z axis points along the light's travel (pyrender's directional light)."""
    z = np.asarray(direction, dtype=np.float64)
    z = z / np.linalg.norm(z)
    helper = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = x, np.cross(z, x), z
    return pose


def check_garment(mesh, name: str, fill: float) -> tuple[np.ndarray, float]:
    """(vertices (V, 3) float64, view scale k); raises :class:`RenderError` if degenerate."""
    v = np.asarray(mesh.vertices, dtype=np.float64)
    f = np.asarray(mesh.faces, dtype=np.int64)
    if len(v) < 3 or len(f) == 0:
        raise RenderError(f"garment {name}: degenerate mesh ({len(v)} vertices, {len(f)} faces)")
    if not np.isfinite(v).all():
        raise RenderError(f"garment {name}: non-finite vertex coordinates")
    if f.min() < 0 or f.max() >= len(v):
        raise RenderError(f"garment {name}: face indices out of range")
    area = float(np.asarray(mesh.area_faces).sum())
    if not area > 1e-12:
        raise RenderError(f"garment {name}: degenerate mesh (total area {area:.3g})")
    try:
        k = view_scale(v, fill)
    except ValueError as exc:
        raise RenderError(f"garment {name}: {exc}") from exc
    return v, k


def _appearance(mesh, name: str):
    """(colors (V, 4) float32 | None, uv (V, 2) | None, texture RGB array | None, base RGBA)."""
    visual = mesh.visual
    kind = getattr(visual, "kind", None)
    if kind == "texture":
        mat = getattr(visual, "material", None)
        image = getattr(mat, "image", None)
        if image is None:
            image = getattr(mat, "baseColorTexture", None)
        uv = getattr(visual, "uv", None)
        if image is not None and uv is not None and len(uv) == len(mesh.vertices):
            tex = np.asarray(image.convert("RGB"), dtype=np.uint8)
            return None, np.asarray(uv, dtype=np.float32), tex, [1.0, 1.0, 1.0, 1.0]
        warnings.warn(f"garment {name}: texture image or UVs missing; rendering a plain colour",
                      stacklevel=3)
    elif kind == "vertex":
        colors = np.asarray(visual.vertex_colors, dtype=np.float32) / 255.0
        return colors, None, None, [1.0, 1.0, 1.0, 1.0]
    else:
        warnings.warn(f"garment {name}: no texture or colours; rendering a plain colour", stacklevel=3)
    return None, None, None, [*FALLBACK_RGB, 1.0]


def garment_mesh(pyrender, mesh, name: str):
    """A two-sided ``pyrender.Mesh`` of ``mesh`` (garment frame), smooth-shaded."""
    if getattr(mesh.visual, "kind", None) == "face":
        # Face colours need unshared vertices to stay crisp.
        normals = np.asarray(mesh.vertex_normals)[mesh.faces].reshape(-1, 3)
        colors = np.repeat(np.asarray(mesh.visual.face_colors, dtype=np.float32) / 255.0, 3, axis=0)
        pos = np.asarray(mesh.vertices)[mesh.faces].reshape(-1, 3)
        faces = np.arange(len(pos)).reshape(-1, 3)
        uv, tex, base = None, None, [1.0, 1.0, 1.0, 1.0]
    else:
        colors, uv, tex, base = _appearance(mesh, name)
        pos, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
        normals = np.asarray(mesh.vertex_normals)
    n = len(pos)
    kwargs = {}
    if colors is not None:
        kwargs["color_0"] = np.concatenate([colors, colors]).astype(np.float32)
    if uv is not None:
        kwargs["texcoord_0"] = np.concatenate([uv, uv]).astype(np.float32)
    texture = None if tex is None else pyrender.Texture(source=tex, source_channels="RGB")
    material = pyrender.MetallicRoughnessMaterial(
        baseColorFactor=base, baseColorTexture=texture, metallicFactor=0.0,
        roughnessFactor=ROUGHNESS, alphaMode="OPAQUE", doubleSided=False)
    prim = pyrender.Primitive(
        positions=np.concatenate([pos, pos]).astype(np.float32),
        normals=np.concatenate([normals, -normals]).astype(np.float32),
        indices=np.concatenate([faces, faces[:, ::-1] + n]).astype(np.uint32),
        material=material, **kwargs)
    return pyrender.Mesh(primitives=[prim])


class GarmentScene:
    """A pyrender scene of one garment, re-posed per view (uploaded to GL once)."""

    def __init__(self, pyrender, mesh, background: list[int], name: str):
        bg = [c / 255.0 for c in background] + [1.0]
        self.scene = pyrender.Scene(bg_color=bg, ambient_light=[0.0, 0.0, 0.0])
        self.mesh_node = self.scene.add(garment_mesh(pyrender, mesh, name), pose=np.eye(4))
        cam = pyrender.OrthographicCamera(xmag=1.0, ymag=1.0, znear=ZNEAR, zfar=ZFAR)
        cam_pose = np.eye(4)
        cam_pose[2, 3] = CAMERA_Z
        self.scene.add(cam, pose=cam_pose)
        self.light = pyrender.DirectionalLight(color=[1.0, 1.0, 1.0], intensity=1.0)
        self.light_node = self.scene.add(self.light, pose=np.eye(4))

    def set_view(self, calib: np.ndarray, light: dict) -> None:
        self.scene.set_pose(self.mesh_node, calib)
        self.light.color = np.asarray(light["color"], dtype=np.float64)
        self.light.intensity = float(light["intensity"])
        self.scene.set_pose(self.light_node, _light_pose(light["direction"]))
        self.scene.ambient_light = np.full(3, light["ambient"], dtype=np.float64)


def view_rng(seed: int, yaw: float) -> np.random.Generator:
    """RNG of one view: depends on the seed and the yaw only (not on the other yaws)."""
    return np.random.default_rng([int(seed), int(round(float(yaw) * 1000)) % 360000])


def render_views(mesh, yaws: list[float], cfg: RenderConfig, seed: int, *, name: str = "<mesh>",
                 depth: bool = False) -> list[RenderedView]:
    """Render ``mesh`` (garment frame) at each yaw (degrees) with ``cfg`` (a RenderConfig).

    The scale is ``view_scale(vertices, cfg.fill)`` and each view's ``calib`` is
    ``make_calib(yaw, k)``, so ``ndc_to_pixel(project(calib, v))`` lands on the pixels that
    show ``v``. Lights come from ``view_rng(seed, yaw)``. Reuses this process's renderer.
    ``depth=True`` also returns each view's NDC depth map (from the raw depth buffer).
    Raises :class:`RenderError` naming ``name`` for degenerate or oversized garments.
    """
    from anchorudf.render.backend import get_renderer, import_pyrender, ortho_ndc_depth, raw_depth

    pyrender = import_pyrender(cfg.backend)
    vertices, k = check_garment(mesh, name, cfg.fill)
    gscene = GarmentScene(pyrender, mesh, list(cfg.background), name)
    renderer = get_renderer(cfg.size, cfg.size, cfg.backend)
    background = np.asarray(cfg.background, dtype=np.uint8)
    out = []
    for yaw in yaws:
        calib = make_calib(float(yaw), k)
        ndc = project(calib, vertices)  # (V, 3)
        if np.abs(ndc).max() > 1.0:
            raise RenderError(f"garment {name}: larger than the view at yaw {yaw} "
                              f"(projected |NDC| up to {np.abs(ndc).max():.3f} > 1)")
        light = random_light(view_rng(seed, yaw))
        gscene.set_view(calib, light)
        color, pr_depth = renderer.render(gscene.scene)
        mask = pr_depth > 0  # pyrender writes exactly 0 where the raw depth is the far value
        image = np.array(color[..., :3], dtype=np.uint8)
        image[~mask] = background
        ndc_z = (ortho_ndc_depth(raw_depth(pr_depth, ZNEAR, ZFAR), ZNEAR, ZFAR, CAMERA_Z)
                 if depth else None)
        out.append(RenderedView(yaw=float(yaw), image=image, mask=mask, calib=calib, light=light,
                                depth=ndc_z))
    return out
