"""S-CIELAB and S-CIEDE2000: colour differences after the spatial filtering of the human eye.

Both images are converted to CIE XYZ, then to the opponent space of Poirson & Wandell (1993)
(luminance, red-green, blue-yellow), each opponent plane is blurred by the sum-of-Gaussians
contrast-sensitivity kernel of its channel, the result goes back to XYZ and CIELAB (D65 white of
the chosen convention) and the per-pixel difference is CIE76 (S-CIELAB) or CIEDE2000
(S-CIEDE2000, Johnson & Fairchild 2003).

The filters follow the reference code of Zhang & Wandell (scielab.m, separableFilters.m,
gauss.m, separableConv.m, 1996-1998) exactly: Gaussians of half-width (FWHM, in degrees)
[0.05, 0.225, 7.0] with weights [1.00327, 0.114416, -0.117686] (luminance), [0.0685, 0.826] /
[0.616725, 0.383275] (red-green), [0.0920, 0.6451] / [0.567885, 0.432115] (blue-yellow); kernels
limited to one degree; below 224 samples per degree the kernels are built at an integer multiple
of the resolution, smoothed by the linear-interpolation (triangle) kernel and decimated; each 2-D
kernel is applied as a sum of separable (row, then column) convolutions with edges reflected.

``pixels_per_degree``: the viewing distance as image pixels per degree of visual angle. Default
41: a 120 dpi display viewed from 0.5 m (the default of the S-CIELAB toolbox's ``scParams``).

References: X. Zhang & B. A. Wandell (1996), "A spatial extension of CIELAB for digital color
image reproduction", SID Digest; X. Zhang & B. A. Wandell (1997), J. Soc. Inf. Display 5(1);
A. B. Poirson & B. A. Wandell (1993), JOSA A 10(12); G. M. Johnson & M. D. Fairchild (2003),
"A top down description of S-CIELAB and CIEDE2000", Color Res. Appl. 28(6).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cdbench.colour._tensor import as_tensor, check_channels, split3
from cdbench.colour.ciede2000 import delta_e_ciede2000
from cdbench.colour.cielab import _normalised_xyz_to_lab
from cdbench.colour.conventions import LabConvention, get_convention
from cdbench.colour.difference import delta_e_cie76
from cdbench.colour.srgb import apply_matrix, matrix_tensor, srgb_decode
from cdbench.errors import DataError

DEFAULT_PIXELS_PER_DEGREE = 41.0
MIN_SAMPLES_PER_DEGREE = 224

XYZ_TO_OPPONENT = ((0.2787336, 0.7218031, -0.106552),
                   (-0.4487736, 0.2898056, 0.0771569),
                   (0.0859513, -0.5899859, 0.5011089))
"""Poirson & Wandell opponent space from CIE 1931 XYZ (``cmatrix('xyz2opp', 2)`` of the reference code)."""

FILTER_PARAMETERS = (
    ((0.05, 1.00327), (0.225, 0.114416), (7.0, -0.117686)),  # luminance
    ((0.0685, 0.616725), (0.826, 0.383275)),  # red-green
    ((0.0920, 0.567885), (0.6451, 0.432115)),  # blue-yellow
)
"""(half-width in degrees, weight) of the Gaussians of each opponent channel (weights sum to 1)."""


def _gauss(half_width: float, width: int) -> np.ndarray:
    """gauss.m: a 1-D Gaussian of full width at half maximum ``half_width`` samples, summing to 1."""
    alpha = 2 * math.sqrt(math.log(2)) / (half_width - 1)
    x = np.arange(1, width + 1) - math.floor(width / 2 + 0.5)  # MATLAB round(width / 2)
    g = np.exp(-alpha * alpha * x * x)
    return g / g.sum()


@functools.lru_cache(maxsize=16)
def separable_kernels(pixels_per_degree: float) -> tuple[tuple[np.ndarray, ...], ...]:
    """separableFilters.m (dimension 3): per channel, the signed 1-D kernels (float64 numpy)."""
    if pixels_per_degree <= 0:
        raise DataError(f"pixels_per_degree must be positive, got {pixels_per_degree}")
    uprate = math.ceil(MIN_SAMPLES_PER_DEGREE / pixels_per_degree) if pixels_per_degree < MIN_SAMPLES_PER_DEGREE else 1
    spd = pixels_per_degree * uprate
    width = math.ceil(spd / 2) * 2 - 1
    out = []
    for params in FILTER_PARAMETERS:
        ks = [_gauss(hw * spd, width) * math.sqrt(abs(w)) * math.copysign(1.0, w) for hw, w in params]
        if uprate > 1:
            tri = np.concatenate([np.arange(1, uprate + 1), np.arange(uprate - 1, 0, -1)]) / uprate
            mid = math.ceil(width / 2)  # 1-based centre
            downs = np.concatenate([np.arange(mid, 0, -uprate)[::-1], np.arange(mid + uprate, width + 1, uprate)]) - 1
            # conv2(k, upcol, 'same'): the triangle is centred, so this is the centred full convolution
            ks = [np.convolve(k, tri, mode="same")[downs] for k in ks]
        out.append(tuple(ks))
    return tuple(out)


def _pad_for_conv(x: torch.Tensor, K: int) -> torch.Tensor:
    """Pad the last axis for a 'same' convolution with an odd kernel of K taps, as pad4conv.m:
    edges reflected (edge sample repeated) by up to half the axis, zeros beyond."""
    n = x.shape[-1]
    half = K // 2
    p = min(half, n // 2)
    if p:
        x = torch.cat([x[..., :p].flip(-1), x, x[..., n - p:].flip(-1)], dim=-1)
    if half > p:
        x = F.pad(x, (half - p, half - p))
    return x


def _kernel_bank(pixels_per_degree: float, dtype: torch.dtype, device) -> tuple[torch.Tensor, int]:
    """All 1-D kernels as conv1d weights (3 * n, 1, K), channel-major, zero kernels as padding."""
    kernels = separable_kernels(float(pixels_per_degree))
    n = max(len(ks) for ks in kernels)
    K = len(kernels[0][0])
    bank = np.zeros((3 * n, 1, K))
    for c, ks in enumerate(kernels):
        for j, k in enumerate(ks):
            bank[c * n + j, 0] = k[::-1]  # conv1d correlates: flip for a convolution
    return torch.tensor(bank, dtype=dtype, device=device), n


def filter_opponent(opp: torch.Tensor, pixels_per_degree: float = DEFAULT_PIXELS_PER_DEGREE) -> torch.Tensor:
    """Spatially filter an (H, W, 3) opponent image (separableConv.m: rows with the signed kernels,
    then columns with their absolute values, summed per channel), as two grouped convolutions."""
    bank, n = _kernel_bank(pixels_per_degree, opp.dtype, opp.device)
    K = bank.shape[-1]
    h, w, _ = opp.shape
    rows = F.conv1d(_pad_for_conv(opp.permute(0, 2, 1), K), bank, groups=3)  # (H, 3n, W)
    cols = F.conv1d(_pad_for_conv(rows.permute(2, 1, 0), K), bank.abs(), groups=3 * n)  # (W, 3n, H)
    return cols.reshape(w, 3, n, h).sum(dim=2).permute(2, 0, 1)  # (H, W, 3)


def srgb_to_scielab(rgb: Any, *, pixels_per_degree: float = DEFAULT_PIXELS_PER_DEGREE,
                    dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                    convention: str | LabConvention = "cie") -> torch.Tensor:
    """An (H, W, 3) sRGB image -> its S-CIELAB representation (filtered CIELAB), as a torch tensor."""
    conv = get_convention(convention)
    t = as_tensor(rgb, dtype=dtype, device=device, keep_integer=True)
    check_channels(t, "image")
    if t.ndim != 3:
        raise DataError(f"an image must have shape (H, W, 3), got {tuple(t.shape)}")
    lin = srgb_decode(t, dtype=dtype, convention=conv)
    xyz = apply_matrix(matrix_tensor(conv.rgb_to_xyz, lin), lin)
    opp = filter_opponent(apply_matrix(matrix_tensor(XYZ_TO_OPPONENT, xyz), xyz), pixels_per_degree)
    inv = torch.linalg.inv(matrix_tensor(XYZ_TO_OPPONENT, opp).to(torch.float64)).to(opp.dtype)
    xyz_f = apply_matrix(inv, opp)
    x, y, z = split3(xyz_f)
    wx, wy, wz = conv.white_xyz
    return _normalised_xyz_to_lab(x / wx, y / wy, z / wz, conv)


def spatial_difference_map(img1: Any, img2: Any, formula: str = "s-cielab", *,
                           pixels_per_degree: float = DEFAULT_PIXELS_PER_DEGREE,
                           device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                           convention: str | LabConvention = "cie",
                           **formula_options: Any) -> torch.Tensor:
    """(H, W) S-CIELAB (CIE76) or S-CIEDE2000 map of two sRGB images of the same size."""
    if formula not in ("s-cielab", "s-ciede2000"):
        raise DataError(f"unknown spatial formula {formula!r}: use s-cielab or s-ciede2000")
    allowed = ("kL", "kC", "kH") if formula == "s-ciede2000" else ()
    unknown = set(formula_options) - set(allowed)
    if unknown:
        raise DataError(f"{formula}: unknown option(s) {', '.join(sorted(unknown))}; allowed: "
                        f"{', '.join(('pixels_per_degree', 'convention', *allowed))}")
    a = as_tensor(img1, dtype=None, device=device, keep_integer=True)
    b = as_tensor(img2, dtype=None, device=device, keep_integer=True)
    if a.shape != b.shape:
        raise DataError(f"the two images differ in size: {tuple(a.shape)} and {tuple(b.shape)}")
    lab1 = srgb_to_scielab(a, pixels_per_degree=pixels_per_degree, dtype=dtype, convention=convention)
    lab2 = srgb_to_scielab(b.to(a.device), pixels_per_degree=pixels_per_degree, dtype=dtype, convention=convention)
    if formula == "s-cielab":
        return delta_e_cie76(lab1, lab2)
    return delta_e_ciede2000(lab1, lab2, **formula_options)
