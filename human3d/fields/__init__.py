"""Shared neural-field parts: encodings (positional, Fourier features, spherical harmonics, hash grid) and MLPs."""

from human3d.fields.encodings import (  # noqa: F401
    HASH_PRIMES,
    GaussianFourierFeatures,
    HashGridEncoding,
    PositionalEncoding,
    SphericalHarmonicsEncoding,
    fourier_features,
    hash_grid_indices,
    hash_grid_level_resolutions,
    num_sh_bases,
    positional_encoding,
    sh_basis,
)
from human3d.fields.mlp import MLP, NeRFField, NGPField, RadianceField, trunc_exp  # noqa: F401
