"""CIECAM16 (forward, J M h) and CAM16-UCS (J', a', b') from XYZ or sRGB.

References: Li, Li, Wang, Xu, Luo, Cui, Melgosa, Brill & Pointer (2017), "Comprehensive color
solutions: CAM16, CAT16, and CAM16-UCS", Color Res. Appl. 42(6), 703-718 (CAM16: Part II, the
steps of CIECAM02 with the M16 matrix; UCS: eq. (A.1)-(A.3), c1 = 0.007, c2 = 0.0228);
Luo, Cui & Li (2006) for the UCS. Implemented after colour-science's ``XYZ_to_CAM16`` and
``XYZ_to_CAM16UCS``, whose results it reproduces (sign-preserving powers for out-of-gamut input).

Default viewing conditions (colour-science's ``CAM_KWARGS_CIECAM02_sRGB``, the sRGB reference
viewing environment of IEC 61966-2-1): adopted white = the D65 white of the ``"cie"`` convention
(Y_w = 100), adapting luminance L_A = 64 lx / pi * 0.2 = 4.07 cd/m^2, background Y_b = 20,
"Average" surround (F = 1, c = 0.69, N_c = 1), illuminant not discounted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from cdbench.colour._tensor import as_tensor, check_channels, like_input, split3, spow, stack3
from cdbench.colour.conventions import CIE, LabConvention, get_convention
from cdbench.colour.srgb import apply_matrix, matrix_tensor, srgb_to_xyz

M16 = ((0.401288, 0.650173, -0.051461), (-0.250268, 1.204414, 0.045854), (-0.002079, 0.048952, 0.953127))

SURROUNDS: dict[str, tuple[float, float, float]] = {
    "average": (1.0, 0.69, 1.0), "dim": (0.9, 0.59, 0.9), "dark": (0.8, 0.525, 0.8)}


@dataclass(frozen=True)
class CAM16ViewingConditions:
    """CAM16 viewing conditions and the constants derived from them (all python floats)."""

    white_xyz: tuple[float, float, float] = tuple(100 * v for v in CIE.white_xyz)  # XYZ_w, Y_w = 100
    L_A: float = 64 / math.pi * 0.2  # adapting field luminance, cd/m^2
    Y_b: float = 20.0  # relative luminance of the background
    surround: str = "average"
    discount_illuminant: bool = False

    def derived(self) -> dict[str, Any]:
        """D_RGB, F_L, n, z, N_bb, N_cb, A_w, F, c, N_c (Li et al. 2017, steps 0 and 1)."""
        try:
            F, c, N_c = SURROUNDS[self.surround.lower()]
        except KeyError:
            raise ValueError(f"unknown surround {self.surround!r}: use {', '.join(SURROUNDS)}") from None
        L_A, Y_b = self.L_A, self.Y_b
        Y_w = self.white_xyz[1]
        RGB_w = [sum(m * x for m, x in zip(row, self.white_xyz)) for row in M16]
        D = 1.0 if self.discount_illuminant else min(max(F * (1 - (1 / 3.6) * math.exp((-L_A - 42) / 92)), 0), 1)
        D_RGB = [D * Y_w / r + 1 - D for r in RGB_w]
        n = Y_b / Y_w
        k = 1 / (5 * L_A + 1)
        F_L = 0.2 * k**4 * (5 * L_A) + 0.1 * (1 - k**4) ** 2 * (5 * L_A) ** (1 / 3)
        N_bb = N_cb = 0.725 * (1 / n) ** 0.2
        z = 1.48 + math.sqrt(n)
        RGB_aw = []
        for d, r in zip(D_RGB, RGB_w):
            f = (F_L * abs(d * r) / 100) ** 0.42
            RGB_aw.append(400 * math.copysign(1, d * r) * f / (27.13 + f) + 0.1)
        A_w = (2 * RGB_aw[0] + RGB_aw[1] + RGB_aw[2] / 20 - 0.305) * N_bb
        return {"D_RGB": D_RGB, "F_L": F_L, "n": n, "z": z, "N_bb": N_bb, "N_cb": N_cb, "A_w": A_w,
                "F": F, "c": c, "N_c": N_c}


DEFAULT_VIEWING = CAM16ViewingConditions()


def xyz_to_cam16_jmh(xyz: Any, *, viewing: CAM16ViewingConditions = DEFAULT_VIEWING,
                     dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Any:
    """CIE XYZ (Y = 100 for the white) -> CAM16 lightness J, colourfulness M, hue angle h (degrees).

    Reference: Li et al. (2017), CAM16 forward steps 1-9; colour-science ``XYZ_to_CAM16``.
    """
    t = as_tensor(xyz, dtype=dtype, device=device)
    check_channels(t, "XYZ array")
    p = viewing.derived()
    rgb = apply_matrix(matrix_tensor(M16, t), t)  # step 1
    rgb_c = rgb * torch.tensor(p["D_RGB"], dtype=t.dtype, device=t.device)  # step 2
    f = spow(p["F_L"] * torch.abs(rgb_c) / 100, 0.42)  # step 3
    rgb_a = 400 * torch.sign(rgb_c) * f / (27.13 + f) + 0.1
    Ra, Ga, Ba = split3(rgb_a)
    a = Ra - 12 * Ga / 11 + Ba / 11  # step 4
    b = (Ra + Ga - 2 * Ba) / 9
    h = torch.rad2deg(torch.atan2(b, a)) % 360
    e_t = 0.25 * (torch.cos(2 + h * math.pi / 180) + 3.8)  # step 5
    A = (2 * Ra + Ga + Ba / 20 - 0.305) * p["N_bb"]  # step 6
    J = 100 * spow(A / p["A_w"], p["c"] * p["z"])  # step 7
    denom = Ra + Ga + 21 * Ba / 20
    tq = (50000 / 13) * p["N_c"] * p["N_cb"] * e_t * torch.sqrt(a**2 + b**2) / denom  # step 9
    tq = torch.where(denom == 0, torch.zeros_like(tq), tq)
    C = spow(tq, 0.9) * spow(J / 100, 0.5) * (1.64 - 0.29 ** p["n"]) ** 0.73
    M = C * p["F_L"] ** 0.25
    return like_input(stack3(J, M, h), xyz)


def jmh_to_cam16ucs(jmh: Any, *, c1: float = 0.007, c2: float = 0.0228, dtype: torch.dtype | None = None) -> Any:
    """CAM16 (J, M, h) -> CAM16-UCS (J', a', b'). Reference: Li et al. (2017) eq. (A.1)-(A.3)."""
    t = as_tensor(jmh, dtype=dtype)
    check_channels(t, "JMh array")
    J, M, h = split3(t)
    J_p = (1 + 100 * c1) * J / (1 + c1 * J)
    M_p = torch.log1p(c2 * M) / c2
    hr = torch.deg2rad(h)
    return like_input(stack3(J_p, M_p * torch.cos(hr), M_p * torch.sin(hr)), jmh)


def xyz_to_cam16ucs(xyz: Any, *, viewing: CAM16ViewingConditions = DEFAULT_VIEWING,
                    dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Any:
    """CIE XYZ (Y = 1 for the white, as colour-science's ``XYZ_to_CAM16UCS``) -> CAM16-UCS J'a'b'."""
    t = as_tensor(xyz, dtype=dtype, device=device)
    return like_input(jmh_to_cam16ucs(xyz_to_cam16_jmh(t * 100, viewing=viewing)), xyz)


def srgb_to_cam16ucs(rgb: Any, *, viewing: CAM16ViewingConditions = DEFAULT_VIEWING,
                     dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                     convention: str | LabConvention = "cie") -> Any:
    """sRGB (uint8 or float in [0, 1]) -> CAM16-UCS (J', a', b') under the default viewing conditions.

    Equal to colour-science's ``XYZ_to_CAM16UCS(sRGB_to_XYZ(rgb))`` with the ``"cie"`` convention.
    """
    xyz = srgb_to_xyz(as_tensor(rgb, dtype=dtype, device=device, keep_integer=True), dtype=dtype,
                      convention=get_convention(convention))
    return like_input(xyz_to_cam16ucs(xyz, viewing=viewing), rgb)
