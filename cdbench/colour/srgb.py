"""sRGB decoding (IEC 61966-2-1:1999) and sRGB -> CIE XYZ.

uint8 input is decoded through a 256-entry lookup table (exact: it holds the float64 transfer
function of every code value), float input in [0, 1] through the piecewise transfer function;
values outside [0, 1] (out of gamut) follow the same curve with a sign-preserving power, as in
colour-science. XYZ is relative (Y = 1 for the sRGB white).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from cdbench.colour._tensor import as_tensor, check_channels, like_input
from cdbench.colour.conventions import LabConvention, get_convention


def srgb_eotf_float64(v: np.ndarray, convention: str | LabConvention = "cie") -> np.ndarray:
    """The sRGB decoding function in numpy float64 (IEC 61966-2-1 eq. 5): V -> linear RGB."""
    conv = get_convention(convention)
    v = np.asarray(v, dtype=np.float64)
    x = (v + 0.055) / 1.055
    return np.where(v <= conv.decode_threshold, v / 12.92, np.sign(x) * np.abs(x) ** 2.4)


@functools.lru_cache(maxsize=32)
def _lut(convention: str, dtype: torch.dtype, device: str) -> torch.Tensor:
    table = srgb_eotf_float64(np.arange(256) / 255.0, convention)
    return torch.tensor(table, dtype=dtype, device=device)


def srgb_lut(*, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
             convention: str | LabConvention = "cie") -> torch.Tensor:
    """The 256-entry decoding table of 8-bit sRGB code values (linear RGB of ``i / 255``)."""
    conv = get_convention(convention)
    if conv.name not in ("cie", "skimage"):
        table = srgb_eotf_float64(np.arange(256) / 255.0, conv)
        return torch.tensor(table, dtype=dtype, device=device)
    return _lut(conv.name, dtype, str(torch.device(device)))


def srgb_decode(rgb: Any, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                convention: str | LabConvention = "cie") -> Any:
    """sRGB (uint8 0..255, or float with 1 = white) -> linear RGB, channels last, any batch shape.

    Reference: IEC 61966-2-1:1999, eq. (5); colour-science ``eotf_sRGB``.
    """
    t = as_tensor(rgb, dtype=dtype, device=device, keep_integer=True)
    if t.dtype == torch.uint8:
        out_dtype = dtype or torch.float32
        out = srgb_lut(dtype=out_dtype, device=t.device, convention=convention)[t.long()]
        return like_input(out, rgb)
    conv = get_convention(convention)
    x = (t + 0.055) / 1.055
    out = torch.where(t <= conv.decode_threshold, t / 12.92, torch.sign(x) * torch.abs(x) ** 2.4)
    return like_input(out, rgb)


def matrix_tensor(m: tuple[tuple[float, ...], ...], like: torch.Tensor) -> torch.Tensor:
    """A constant 3x3 matrix on the dtype/device of ``like``."""
    return torch.tensor(m, dtype=like.dtype, device=like.device)


def apply_matrix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``m @ x`` for every colour of a channels-last array (colour-science's ``vecmul``)."""
    return x @ m.transpose(0, 1)


def srgb_to_xyz(rgb: Any, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                convention: str | LabConvention = "cie") -> Any:
    """sRGB -> CIE XYZ (D65, Y = 1 for white), channels last, any batch shape.

    uint8 input is read as 8-bit code values, float input as [0, 1]. Reference: IEC 61966-2-1:1999;
    equal to colour-science's ``sRGB_to_XYZ`` with the default ``"cie"`` convention.
    """
    conv = get_convention(convention)
    t = as_tensor(rgb, dtype=dtype, device=device, keep_integer=True)
    check_channels(t, "sRGB array")
    lin = srgb_decode(t, dtype=dtype, convention=conv)
    return like_input(apply_matrix(matrix_tensor(conv.rgb_to_xyz, lin), lin), rgb)
