"""Colour spaces and classic colour-difference formulas, vectorised in torch (CPU and CUDA).

Every function takes channels-last arrays of any batch shape (torch tensors, or numpy arrays:
numpy in, numpy out), computes in float32 by default and in float64 for float64 input or
``dtype=torch.float64``. Formulas follow colour-science's ``colour.difference`` and are checked
against it (float64, relative error <= 1e-6) and against Sharma et al. (2005) for CIEDE2000.

Colour spaces: :func:`srgb_decode`, :func:`srgb_to_xyz`, :func:`xyz_to_lab`, :func:`srgb_to_lab`,
:func:`lab_to_lch`, :func:`srgb_to_cam16ucs`, :func:`srgb_to_ictcp`; formulas:
:func:`delta_e_cie76`, :func:`delta_e_cie94`, :func:`delta_e_ciede2000` (and its intermediate
terms, :func:`ciede2000_terms`), :func:`delta_e_cmc`, :func:`delta_e_cam16ucs`, :func:`delta_e_itp`;
images: :func:`difference_map`, :func:`image_difference` (pooled: mean, median, p95), and the
spatial S-CIELAB / S-CIEDE2000 (:mod:`cdbench.colour.spatial`).
"""

from cdbench.colour.cam16 import (
    CAM16ViewingConditions,
    jmh_to_cam16ucs,
    srgb_to_cam16ucs,
    xyz_to_cam16_jmh,
    xyz_to_cam16ucs,
)
from cdbench.colour.ciede2000 import CIEDE2000Terms, ciede2000_terms, delta_e_ciede2000
from cdbench.colour.cielab import lab_to_lch, srgb_to_lab, xyz_to_lab
from cdbench.colour.conventions import CONVENTIONS, LabConvention, get_convention
from cdbench.colour.difference import delta_e_cam16ucs, delta_e_cie76, delta_e_cie94, delta_e_cmc, delta_e_itp
from cdbench.colour.ictcp import linear_bt2020_to_ictcp, srgb_to_ictcp
from cdbench.colour.image import PIXEL_FORMULAS, difference_map, image_difference
from cdbench.colour.pooling import POOLINGS, get_pooling, pool_mean, pool_median, pool_p95, pool_percentile
from cdbench.colour.spatial import DEFAULT_PIXELS_PER_DEGREE, spatial_difference_map, srgb_to_scielab
from cdbench.colour.srgb import srgb_decode, srgb_lut, srgb_to_xyz

__all__ = [
    "CAM16ViewingConditions", "jmh_to_cam16ucs", "srgb_to_cam16ucs", "xyz_to_cam16_jmh", "xyz_to_cam16ucs",
    "CIEDE2000Terms", "ciede2000_terms", "delta_e_ciede2000", "lab_to_lch", "srgb_to_lab", "xyz_to_lab",
    "CONVENTIONS", "LabConvention", "get_convention", "delta_e_cam16ucs", "delta_e_cie76", "delta_e_cie94",
    "delta_e_cmc", "delta_e_itp", "linear_bt2020_to_ictcp", "srgb_to_ictcp", "PIXEL_FORMULAS", "difference_map",
    "image_difference", "POOLINGS", "get_pooling", "pool_mean", "pool_median", "pool_p95", "pool_percentile",
    "srgb_decode", "srgb_lut", "srgb_to_xyz", "DEFAULT_PIXELS_PER_DEGREE", "spatial_difference_map",
    "srgb_to_scielab",
]
