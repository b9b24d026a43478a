"""anchorudf: single-view 3D garment reconstruction with anchored unsigned distance fields."""

__version__ = "0.1.0"
