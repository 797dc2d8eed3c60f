"""Implicit surfaces: ground truth from meshes (signed distances, DeepSDF's sample mix), analytic SDFs, mesh
extraction (dense marching cubes and MISE), and networks (IGR, hash-grid SDF, DeepSDF, occupancy networks); a learned
shape space (``shapes``: DeepSDF over Anny bodies or a mesh folder), its code priors (``code_prior``) and completion
from one depth view (``completion``).

Sign convention everywhere: a field is negative inside the surface (SDF); occupancy networks expose the same
convention through ``-logit``. Shapes live in the unit ball (see :class:`~human3d.implicit.sampling.Normalization`).
"""
