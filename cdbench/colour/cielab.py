"""CIE XYZ -> CIELAB (CIE 15:2004, section 8.2.1) and sRGB -> CIELAB, plus LCh.

``L`` in 0..100 for Y between 0 and the white; a*, b* unbounded. The white point and the
constants of the cube-root segment come from the chosen :mod:`~cdbench.colour.conventions`.
"""

from __future__ import annotations

from typing import Any

import torch

from cdbench.colour._tensor import as_tensor, check_channels, like_input, split3, stack3
from cdbench.colour.conventions import LabConvention, get_convention
from cdbench.colour.srgb import apply_matrix, matrix_tensor, srgb_decode


def lab_f(t: torch.Tensor, convention: str | LabConvention = "cie") -> torch.Tensor:
    """CIE 1976 intermediate function: ``t**(1/3)`` above epsilon, ``slope * t + 16/116`` below.

    Reference: CIE 15:2004 eq. (8.3)-(8.6); colour-science ``intermediate_lightness_function_CIE1976``.
    """
    conv = get_convention(convention)
    above = t > conv.lab_epsilon
    cube_root = torch.sign(t) * torch.abs(t) ** (1.0 / 3.0)
    return torch.where(above, cube_root, conv.lab_slope * t + 16.0 / 116.0)


def _normalised_xyz_to_lab(xn: torch.Tensor, yn: torch.Tensor, zn: torch.Tensor,
                           conv: LabConvention) -> torch.Tensor:
    fx, fy, fz = lab_f(xn, conv), lab_f(yn, conv), lab_f(zn, conv)
    return stack3(116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz))


def xyz_to_lab(xyz: Any, *, white: tuple[float, float, float] | None = None, dtype: torch.dtype | None = None,
               device: torch.device | str | None = None, convention: str | LabConvention = "cie") -> Any:
    """CIE XYZ (Y = 1 for the white) -> CIELAB, channels last, any batch shape.

    ``white``: the reference white XYZ (default: the convention's D65). Reference: CIE 15:2004
    section 8.2.1; equal to colour-science's ``XYZ_to_Lab`` with the ``"cie"`` convention.
    """
    conv = get_convention(convention)
    t = as_tensor(xyz, dtype=dtype, device=device)
    check_channels(t, "XYZ array")
    wx, wy, wz = white if white is not None else conv.white_xyz
    x, y, z = split3(t)
    return like_input(_normalised_xyz_to_lab(x / wx, y / wy, z / wz, conv), xyz)


def srgb_to_lab(rgb: Any, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                convention: str | LabConvention = "cie") -> Any:
    """sRGB (uint8 or float in [0, 1]) -> CIELAB under D65, channels last, any batch shape.

    The white point is folded into the sRGB -> XYZ matrix (one 3x3 product). Equal to
    colour-science's ``XYZ_to_Lab(sRGB_to_XYZ(rgb))`` (``"cie"``) or to ``skimage.color.rgb2lab``
    (``convention="skimage"``). References: IEC 61966-2-1:1999; CIE 15:2004 section 8.2.1.
    """
    conv = get_convention(convention)
    t = as_tensor(rgb, dtype=dtype, device=device, keep_integer=True)
    check_channels(t, "sRGB array")
    lin = srgb_decode(t, dtype=dtype, convention=conv)
    xyz_n = apply_matrix(matrix_tensor(conv.lab_matrix, lin), lin)
    return like_input(_normalised_xyz_to_lab(*split3(xyz_n), conv), rgb)


def lab_to_lch(lab: Any, *, dtype: torch.dtype | None = None) -> Any:
    """CIELAB -> (L, C*ab, h_ab in degrees 0..360). Reference: CIE 15:2004 eq. (8.8)-(8.9)."""
    t = as_tensor(lab, dtype=dtype)
    check_channels(t, "Lab array")
    L, a, b = split3(t)
    h = torch.rad2deg(torch.atan2(b, a)) % 360.0
    return like_input(stack3(L, torch.hypot(a, b), h), lab)
