"""CIEDE2000 colour difference (CIE 142-2001; Luo, Cui & Rigg 2001), reference implementation.

Written term by term after Sharma, Wu & Dalal (2005), "The CIEDE2000 Color-Difference Formula:
Implementation Notes, Supplementary Test Data, and Mathematical Observations", Color Res. Appl.
30(1), eq. (1)-(22), with the same branch conventions as colour-science's ``delta_E_CIE2000``
(hue of a neutral colour = 0; mean hue of a pair containing a neutral colour = the sum of hues).
This plain-torch version is the exactness reference: the fused fast path of
:mod:`cdbench.colour.fused` is checked against it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from cdbench.colour._tensor import as_tensor, check_channels, like_input, split3

_25_POW_7 = 25.0**7


class CIEDE2000Terms(NamedTuple):
    """The intermediate quantities of Sharma et al. (2005) Table 1, elementwise (angles in degrees)."""

    a_p1: torch.Tensor  # a'1, eq. (3)
    a_p2: torch.Tensor
    C_p1: torch.Tensor  # C'1, eq. (4)
    C_p2: torch.Tensor
    h_p1: torch.Tensor  # h'1 in [0, 360), eq. (5)
    h_p2: torch.Tensor
    G: torch.Tensor  # eq. (2)
    dL_p: torch.Tensor  # Delta L', eq. (8)
    dC_p: torch.Tensor  # Delta C', eq. (9)
    dH_p: torch.Tensor  # Delta H', eq. (11)
    h_bar_p: torch.Tensor  # mean hue h-bar', eq. (14)
    T: torch.Tensor  # eq. (15)
    S_L: torch.Tensor  # eq. (18)
    S_C: torch.Tensor  # eq. (19)
    S_H: torch.Tensor  # eq. (20)
    R_T: torch.Tensor  # eq. (21)


def _cos_deg(x: torch.Tensor) -> torch.Tensor:
    return torch.cos(torch.deg2rad(x))


def _hue_deg(b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    h = torch.rad2deg(torch.atan2(b, a)) % 360.0
    return torch.where((a == 0) & (b == 0), torch.zeros_like(h), h)


def ciede2000_terms(lab1: Any, lab2: Any, *, dtype: torch.dtype | None = None) -> CIEDE2000Terms:
    """All intermediate terms of CIEDE2000 for two CIELAB arrays (channels last, broadcastable).

    Reference: Sharma, Wu & Dalal (2005), eq. (1)-(21); tensors are returned as torch tensors.
    """
    t1, t2 = as_tensor(lab1, dtype=dtype), as_tensor(lab2, dtype=dtype)
    if t1.dtype != t2.dtype:
        t1, t2 = t1.to(torch.promote_types(t1.dtype, t2.dtype)), t2.to(torch.promote_types(t1.dtype, t2.dtype))
    t2 = t2.to(t1.device)
    check_channels(t1, "Lab array")
    check_channels(t2, "Lab array")
    L1, a1, b1 = split3(t1)
    L2, a2, b2 = split3(t2)

    C_bar = (torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2  # eq. (2)
    C_bar7 = C_bar**7
    G = 0.5 * (1 - torch.sqrt(C_bar7 / (C_bar7 + _25_POW_7)))
    a_p1, a_p2 = (1 + G) * a1, (1 + G) * a2  # eq. (3)
    C_p1, C_p2 = torch.hypot(a_p1, b1), torch.hypot(a_p2, b2)  # eq. (4)
    h_p1, h_p2 = _hue_deg(b1, a_p1), _hue_deg(b2, a_p2)  # eq. (5)

    dL_p = L2 - L1  # eq. (8)
    dC_p = C_p2 - C_p1  # eq. (9)
    C_p12 = C_p1 * C_p2
    dh = h_p2 - h_p1  # eq. (10)
    zero = torch.zeros_like(dh)
    dh_p = torch.where(C_p12 == 0, zero,
                       torch.where(dh.abs() <= 180, dh, torch.where(dh > 180, dh - 360, dh + 360)))
    dH_p = 2 * torch.sqrt(C_p12) * torch.sin(torch.deg2rad(dh_p / 2))  # eq. (11)

    L_bar_p = (L1 + L2) / 2  # eq. (12)
    C_bar_p = (C_p1 + C_p2) / 2  # eq. (13)
    h_sum = h_p1 + h_p2
    h_bar_p = torch.where(  # eq. (14)
        C_p12 == 0, h_sum,
        torch.where(dh.abs() <= 180, h_sum / 2, torch.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2)))
    T = (1 - 0.17 * _cos_deg(h_bar_p - 30) + 0.24 * _cos_deg(2 * h_bar_p)  # eq. (15)
         + 0.32 * _cos_deg(3 * h_bar_p + 6) - 0.20 * _cos_deg(4 * h_bar_p - 63))
    d_theta = 30 * torch.exp(-(((h_bar_p - 275) / 25) ** 2))  # eq. (16)
    C_bar_p7 = C_bar_p**7
    R_C = 2 * torch.sqrt(C_bar_p7 / (C_bar_p7 + _25_POW_7))  # eq. (17)
    L50 = (L_bar_p - 50) ** 2
    S_L = 1 + 0.015 * L50 / torch.sqrt(20 + L50)  # eq. (18)
    S_C = 1 + 0.045 * C_bar_p  # eq. (19)
    S_H = 1 + 0.015 * C_bar_p * T  # eq. (20)
    R_T = -torch.sin(torch.deg2rad(2 * d_theta)) * R_C  # eq. (21)
    return CIEDE2000Terms(a_p1, a_p2, C_p1, C_p2, h_p1, h_p2, G, dL_p, dC_p, dH_p, h_bar_p, T, S_L, S_C, S_H, R_T)


def delta_e_ciede2000(lab1: Any, lab2: Any, *, kL: float = 1.0, kC: float = 1.0, kH: float = 1.0,
                      dtype: torch.dtype | None = None) -> Any:
    """CIEDE2000 colour difference Delta E00 between two CIELAB arrays (channels last, broadcastable).

    ``kL, kC, kH``: the parametric factors (1, 1, 1 under reference conditions; kL = 2 for textiles).
    References: CIE 142-2001; Luo, Cui & Rigg (2001), Color Res. Appl. 26(5); Sharma et al. (2005)
    eq. (22). Equal to colour-science's ``delta_E_CIE2000`` (to float64 rounding).
    """
    t = ciede2000_terms(lab1, lab2, dtype=dtype)
    l_term = t.dL_p / (kL * t.S_L)
    c_term = t.dC_p / (kC * t.S_C)
    h_term = t.dH_p / (kH * t.S_H)
    de = torch.sqrt(l_term**2 + c_term**2 + h_term**2 + t.R_T * c_term * h_term)
    return like_input(de, lab1)

