"""ICtCp (ITU-R BT.2100, PQ) from sRGB, for Delta E_ITP (ITU-R BT.2124).

sRGB is decoded to linear light, converted to BT.2020 primaries (same D65 white, no
adaptation), scaled to absolute luminance with the sRGB white at ``white_luminance`` cd/m^2
(default 100, the SDR reference display of ITU-R BT.1886 / BT.2124 Annex), then encoded with the
SMPTE ST 2084 (PQ) inverse EOTF in the LMS space of BT.2100 (colour-science ``RGB_to_ICtCp``,
method "ITU-R BT.2100-2 PQ" = "Dolby 2016").

References: Recommendation ITU-R BT.2100-2 (2018), Table 6 and 7; SMPTE ST 2084:2014;
Recommendation ITU-R BT.2124-0 (2019).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cdbench.colour._tensor import as_tensor, check_channels, like_input, spow
from cdbench.colour.conventions import LabConvention, get_convention
from cdbench.colour.srgb import apply_matrix, matrix_tensor, srgb_decode

RGB2020_TO_LMS = tuple(tuple(v / 4096 for v in row) for row in ((1688, 2146, 262), (683, 2951, 462), (99, 309, 3688)))
LMS_P_TO_ICTCP = tuple(tuple(v / 4096 for v in row)
                       for row in ((2048, 2048, 0), (6610, -13613, 7003), (17933, -17390, -543)))
PQ_M1, PQ_M2 = 2610 / 16384, 2523 / 4096 * 128
PQ_C1, PQ_C2, PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
PQ_PEAK = 10000.0  # cd/m^2

BT2020_PRIMARIES = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
D65_XY = (0.3127, 0.3290)


def normalised_primary_matrix(primaries, white_xy) -> np.ndarray:
    """RGB -> XYZ matrix from primary and white chromaticities (SMPTE RP 177-1993, eq. 3.1-3.6)."""
    xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries]).T
    wx, wy = white_xy
    w = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
    return xyz * np.linalg.solve(xyz, w)


def srgb_to_bt2020_matrix(convention: str | LabConvention = "cie") -> np.ndarray:
    """Linear sRGB -> linear BT.2020 RGB: the convention's sRGB -> XYZ, then XYZ -> BT.2020."""
    m_srgb = np.array(get_convention(convention).rgb_to_xyz)
    return np.linalg.inv(normalised_primary_matrix(BT2020_PRIMARIES, D65_XY)) @ m_srgb


def pq_inverse_eotf(luminance: torch.Tensor) -> torch.Tensor:
    """SMPTE ST 2084 inverse EOTF: absolute luminance (cd/m^2) -> PQ signal in [0, 1]."""
    y = spow(luminance / PQ_PEAK, PQ_M1)
    return spow((PQ_C1 + PQ_C2 * y) / (PQ_C3 * y + 1), PQ_M2)


def linear_bt2020_to_ictcp(rgb: Any, *, dtype: torch.dtype | None = None) -> Any:
    """Linear BT.2020 RGB in cd/m^2 -> ICtCp (PQ). Reference: ITU-R BT.2100-2 Table 6-7."""
    t = as_tensor(rgb, dtype=dtype)
    check_channels(t, "RGB array")
    lms = apply_matrix(matrix_tensor(RGB2020_TO_LMS, t), t)
    return like_input(apply_matrix(matrix_tensor(LMS_P_TO_ICTCP, t), pq_inverse_eotf(lms)), rgb)


def srgb_to_ictcp(rgb: Any, *, white_luminance: float = 100.0, dtype: torch.dtype | None = None,
                  device: torch.device | str | None = None, convention: str | LabConvention = "cie") -> Any:
    """sRGB (uint8 or float in [0, 1]) -> ICtCp with the sRGB white at ``white_luminance`` cd/m^2.

    Equal to colour-science's ``RGB_to_ICtCp(RGB_to_RGB(rgb, sRGB, BT.2020) * white_luminance)``.
    """
    t = as_tensor(rgb, dtype=dtype, device=device, keep_integer=True)
    check_channels(t, "sRGB array")
    lin = srgb_decode(t, dtype=dtype, convention=convention)
    m = torch.tensor(srgb_to_bt2020_matrix(convention) * white_luminance, dtype=lin.dtype, device=lin.device)
    return like_input(linear_bt2020_to_ictcp(apply_matrix(m, lin)), rgb)
