"""Reconstruction from a UDF: dense point clouds (NDF projection) and open-surface meshes.

torch is imported inside the functions, so importing this package stays light.
"""

from anchorudf.reconstruct.dense import dense_point_cloud, project_points, to_garment_frame, udf_and_grad
from anchorudf.reconstruct.meshing import extract_mesh, udf_mesh
from anchorudf.reconstruct.shell import shell_mesh

__all__ = ["dense_point_cloud", "project_points", "to_garment_frame", "udf_and_grad", "udf_mesh",
           "extract_mesh", "shell_mesh"]
