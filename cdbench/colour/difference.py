"""Classic colour-difference formulas on CIELAB and on the appearance / HDR spaces.

Elementwise on channels-last arrays (any batch shape, broadcastable), torch or numpy, in the
style of colour-science's ``colour.difference``. CIEDE2000 lives in :mod:`cdbench.colour.ciede2000`.
CIE94 and CMC are not symmetric: the first argument is the reference (standard) colour.
"""

from __future__ import annotations

from typing import Any

import torch

from cdbench.colour._tensor import as_tensor, check_channels, like_input, split3


def _pair(x1: Any, x2: Any, dtype: torch.dtype | None, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    t1, t2 = as_tensor(x1, dtype=dtype), as_tensor(x2, dtype=dtype)
    common = torch.promote_types(t1.dtype, t2.dtype)
    t1, t2 = t1.to(common), t2.to(device=t1.device, dtype=common)
    check_channels(t1, what)
    check_channels(t2, what)
    return t1, t2


def delta_e_cie76(lab1: Any, lab2: Any, *, dtype: torch.dtype | None = None) -> Any:
    """CIE 1976 Delta E*ab: the Euclidean distance in CIELAB. Reference: CIE 15:2004 eq. (8.11)."""
    t1, t2 = _pair(lab1, lab2, dtype, "Lab array")
    return like_input(torch.linalg.vector_norm(t1 - t2, dim=-1), lab1)


def delta_e_cie94(lab1: Any, lab2: Any, *, textiles: bool = False, kL: float | None = None,
                  kC: float = 1.0, kH: float = 1.0, dtype: torch.dtype | None = None) -> Any:
    """CIE 1994 Delta E*94, ``lab1`` the reference colour.

    Graphic-arts weights by default (kL = 1, K1 = 0.045, K2 = 0.015); ``textiles=True`` uses
    kL = 2, K1 = 0.048, K2 = 0.014. Reference: CIE 116-1995, "Industrial colour-difference
    evaluation"; equal to colour-science's ``delta_E_CIE1994``.
    """
    t1, t2 = _pair(lab1, lab2, dtype, "Lab array")
    k1, k2 = (0.048, 0.014) if textiles else (0.045, 0.015)
    kL = (2.0 if textiles else 1.0) if kL is None else kL
    L1, a1, b1 = split3(t1)
    L2, a2, b2 = split3(t2)
    C1, C2 = torch.hypot(a1, b1), torch.hypot(a2, b2)
    dL, dC = L1 - L2, C1 - C2
    dH2 = torch.clamp((a1 - a2) ** 2 + (b1 - b2) ** 2 - dC**2, min=0)
    s_C, s_H = 1 + k1 * C1, 1 + k2 * C1
    de = torch.sqrt((dL / kL) ** 2 + (dC / (kC * s_C)) ** 2 + dH2 / (kH * s_H) ** 2)
    return like_input(de, lab1)


def delta_e_cmc(lab1: Any, lab2: Any, *, l: float = 2.0, c: float = 1.0,  # noqa: E741
                dtype: torch.dtype | None = None) -> Any:
    """CMC l:c colour difference, ``lab1`` the reference colour; 2:1 (acceptability) by default.

    Reference: Clarke, McDonald & Rigg (1984), "Modification to the JPC79 colour-difference
    formula", J. Soc. Dyers Colour. 100; BS 6923:1988. Equal to colour-science's ``delta_E_CMC``.
    """
    t1, t2 = _pair(lab1, lab2, dtype, "Lab array")
    L1, a1, b1 = split3(t1)
    L2, a2, b2 = split3(t2)
    C1, C2 = torch.hypot(a1, b1), torch.hypot(a2, b2)
    s_L = torch.where(L1 < 16, torch.full_like(L1, 0.511), 0.040975 * L1 / (1 + 0.01765 * L1))
    s_C = 0.0638 * C1 / (1 + 0.0131 * C1) + 0.638
    h1 = torch.rad2deg(torch.atan2(b1, a1)) % 360
    t = torch.where((h1 >= 164) & (h1 <= 345),
                    0.56 + torch.abs(0.2 * torch.cos(torch.deg2rad(h1 + 168))),
                    0.36 + torch.abs(0.4 * torch.cos(torch.deg2rad(h1 + 35))))
    C4 = C1**4
    f = torch.sqrt(C4 / (C4 + 1900))
    s_H = s_C * (f * t + 1 - f)
    dC = C1 - C2
    dH2 = (a1 - a2) ** 2 + (b1 - b2) ** 2 - dC**2
    de = torch.sqrt(((L1 - L2) / (l * s_L)) ** 2 + (dC / (c * s_C)) ** 2 + dH2 / s_H**2)
    return like_input(de, lab1)


def delta_e_cam16ucs(jab1: Any, jab2: Any, *, dtype: torch.dtype | None = None) -> Any:
    """Delta E' in CAM16-UCS (K_L = 1): the Euclidean distance of (J', a', b').

    Reference: Li et al. (2017), "Comprehensive color solutions: CAM16, CAT16, and CAM16-UCS",
    Color Res. Appl. 42(6), eq. (A.1); Luo, Cui & Li (2006). Equal to colour-science's
    ``delta_E_CAM16UCS``. Convert with :func:`cdbench.colour.srgb_to_cam16ucs`.
    """
    t1, t2 = _pair(jab1, jab2, dtype, "CAM16-UCS array")
    return like_input(torch.linalg.vector_norm(t1 - t2, dim=-1), jab1)


def delta_e_itp(ictcp1: Any, ictcp2: Any, *, dtype: torch.dtype | None = None) -> Any:
    """Delta E_ITP = 720 * sqrt(dI^2 + (0.5 dCt)^2 + dCp^2); 1 = one just noticeable difference.

    Reference: Recommendation ITU-R BT.2124-0 (2019), eq. (1)-(2). Equal to colour-science's
    ``delta_E_ITP``. Convert with :func:`cdbench.colour.srgb_to_ictcp`.
    """
    t1, t2 = _pair(ictcp1, ictcp2, dtype, "ICtCp array")
    d = t1 - t2
    dI, dT, dP = split3(d)
    return like_input(720 * torch.sqrt(dI**2 + (0.5 * dT) ** 2 + dP**2), ictcp1)
