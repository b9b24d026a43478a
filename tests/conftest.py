import os

# Offscreen rendering on CPU: must be set before anything imports OpenGL.
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
