"""The fused fast path: uint8 sRGB pairs -> CIELAB -> Delta E map in one pass per chunk.

Per chunk of pixels (128K by default on CPU) the kernel reads the two uint8 images and writes
one float32 difference per pixel, with no intermediate arrays: sRGB decode through the 256-entry
table, one 3x3 product with the D65 white folded into the matrix, the CIELAB cube root as
``exp(log(t) / 3)``, then the formula. For CIEDE2000 (Sharma et al. 2005, eq. 1-22) the hue
terms are computed from the two unit hue vectors ``(a', b') / C'``, with no branches:

* Delta H' = 2 sqrt(C'1 C'2) sin(Delta h' / 2) = sqrt(C'1 C'2) |u2 - u1|, signed by the cross
  product u1 x u2 (the sign of Delta h' in [-180, 180]);
* the mean hue h-bar' is the bisector of u1 and u2 (eq. 14 without its cases): u1 + u2 for hues
  within 90 degrees, else sign(u1 x u2) rot90(u1 - u2), so that it stays accurate in float32 next
  to opposite hues; its cosine and sine give the four cosines of T (eq. 15) by angle-sum
  identities, and one ``atan2`` gives h-bar' for Delta theta (eq. 16).

Exactly opposite hues (u1 + u2 = 0, |h'1 - h'2| = 180) follow the reference's cases explicitly.
The only departure from :mod:`cdbench.colour.ciede2000` is float32 rounding (about 1e-5
relative), and hue differences within float32 rounding (1e-7 rad) of 180 degrees, where eq. 14
is discontinuous.

Backends (``backend=`` or ``$CDBENCH_BACKEND``): ``"auto"`` (default) runs CIEDE2000 on CPU in the
C twin of this kernel (:mod:`cdbench.colour.native`; CIE76, CIE94 and CMC too, vectorised with libmvec, built once per
machine in about a second) and everything else eagerly in torch (CUDA: elementwise kernels at
memory speed). ``"compile"`` builds the kernel with ``torch.compile`` (Inductor; minutes on first
use, cached on disk by PyTorch, one fixed chunk shape so every image size reuses it; about 3x
slower than the C kernel on CPU, useful on CUDA with Triton or where no C compiler but a working
Inductor exists). A failed build falls back to the eager path with a warning. ``CDBENCH_COMPILE=0``
turns off every build (eager only).
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Callable
from typing import Any

import torch

from cdbench.colour.conventions import LabConvention, get_convention
from cdbench.colour.difference import delta_e_cie76, delta_e_cie94, delta_e_cmc
from cdbench.colour.srgb import srgb_lut

FUSED_FORMULAS = ("ciede2000", "cie76", "cie94", "cmc")
CPU_CHUNK_PIXELS = 1 << 17
CUDA_CHUNK_PIXELS = 1 << 22

_25_POW_7 = 25.0**7
_DEG = 180.0 / math.pi
_RAD = math.pi / 180.0
_COS30, _SIN30 = math.cos(30 * _RAD), math.sin(30 * _RAD)
_COS6, _SIN6 = math.cos(6 * _RAD), math.sin(6 * _RAD)
_COS63, _SIN63 = math.cos(63 * _RAD), math.sin(63 * _RAD)


def supports(formula: str, space_options: dict[str, Any], delta_options: dict[str, Any]) -> bool:
    """Whether the fused kernel computes ``formula`` with these options."""
    return formula in FUSED_FORMULAS and set(space_options) <= {"convention"}


def lab_planes(x: torch.Tensor, lut: torch.Tensor, conv: LabConvention
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, 3) uint8 sRGB -> the L, a, b planes (lookup table, white-folded matrix, cube root as exp/log)."""
    r, g, b = lut[x[:, 0].long()], lut[x[:, 1].long()], lut[x[:, 2].long()]
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = conv.lab_matrix
    eps, slope = conv.lab_epsilon, conv.lab_slope

    def f(t: torch.Tensor) -> torch.Tensor:
        return torch.where(t > eps, torch.exp(torch.log(t) * (1.0 / 3.0)), slope * t + (16.0 / 116.0))

    fx = f(m00 * r + m01 * g + m02 * b)
    fy = f(m10 * r + m11 * g + m12 * b)
    fz = f(m20 * r + m21 * g + m22 * b)
    return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)


def ciede2000_planes(L1: torch.Tensor, a1: torch.Tensor, b1: torch.Tensor, L2: torch.Tensor, a2: torch.Tensor,
                     b2: torch.Tensor, kL: float = 1.0, kC: float = 1.0, kH: float = 1.0) -> torch.Tensor:
    """CIEDE2000 on separate L, a, b planes, branch-free (see the module docstring)."""
    C1 = torch.sqrt(a1 * a1 + b1 * b1)
    C2 = torch.sqrt(a2 * a2 + b2 * b2)
    Cb = 0.5 * (C1 + C2)
    Cb2 = Cb * Cb
    Cb7 = Cb2 * Cb2 * Cb2 * Cb
    g1 = 1.5 - 0.5 * torch.sqrt(Cb7 / (Cb7 + _25_POW_7))  # 1 + G
    ap1, ap2 = g1 * a1, g1 * a2
    Cp1 = torch.sqrt(ap1 * ap1 + b1 * b1)
    Cp2 = torch.sqrt(ap2 * ap2 + b2 * b2)
    inv1 = torch.where(Cp1 > 0, 1.0 / Cp1, 0.0)
    inv2 = torch.where(Cp2 > 0, 1.0 / Cp2, 0.0)
    u1x, u1y, u2x, u2y = ap1 * inv1, b1 * inv1, ap2 * inv2, b2 * inv2
    dx, dy = u2x - u1x, u2y - u1y
    cross = u1x * u2y - u1y * u2x  # sin(h'2 - h'1)
    # the mean hue is the bisector of u1 and u2: u1 + u2 where the hues are within 90 degrees,
    # else sign(cross) * rot90(u1 - u2) (no cancellation near opposite hues); exactly opposite
    # hues (Sharma pairs 10 and 14) follow eq. (10) and (14): the mean hue is the smaller hue
    # + 90 degrees, u_k rotated, with u_k the one in [0, 180), and Delta h' = +-180 accordingly
    vx, vy = u1x + u2x, u1y + u2y
    use_sum = vx * vx + vy * vy >= dx * dx + dy * dy
    opposite = (cross == 0) & (Cp1 * Cp2 > 0) & ~use_sum
    first_low = (b1 > 0) | ((b1 == 0) & (ap1 > 0))
    ukx, uky = torch.where(first_low, u1x, u2x), torch.where(first_low, u1y, u2y)
    sgn = torch.sign(cross)
    wx = torch.where(use_sum, vx, torch.where(opposite, -uky, sgn * dy))
    wy = torch.where(use_sum, vy, torch.where(opposite, ukx, -sgn * dx))
    cross = torch.where(opposite, torch.where(first_low, 1.0, -1.0), cross)
    dH = torch.copysign(torch.sqrt(Cp1 * Cp2 * (dx * dx + dy * dy)), cross)
    nrm2 = wx * wx + wy * wy
    inv = torch.where(nrm2 > 0, torch.rsqrt(nrm2), 0.0)
    c = torch.where(nrm2 > 0, wx * inv, 1.0)
    s = wy * inv
    c2, s2 = c * c - s * s, 2.0 * c * s
    c3, s3 = c * c2 - s * s2, s * c2 + c * s2
    c4, s4 = c2 * c2 - s2 * s2, 2.0 * s2 * c2
    T = (1.0 - 0.17 * (c * _COS30 + s * _SIN30) + 0.24 * c2 + 0.32 * (c3 * _COS6 - s3 * _SIN6)
         - 0.20 * (c4 * _COS63 + s4 * _SIN63))
    h = torch.atan2(s, c) * _DEG
    h = torch.where(h < 0, h + 360.0, h)
    hd = (h - 275.0) * (1.0 / 25.0)
    d_theta = 30.0 * torch.exp(-(hd * hd))
    Cbp = 0.5 * (Cp1 + Cp2)
    Cbp2 = Cbp * Cbp
    Cbp7 = Cbp2 * Cbp2 * Cbp2 * Cbp
    R_T = -2.0 * torch.sqrt(Cbp7 / (Cbp7 + _25_POW_7)) * torch.sin(d_theta * (2.0 * _RAD))
    Lb = 0.5 * (L1 + L2) - 50.0
    Lb2 = Lb * Lb
    S_L = 1.0 + 0.015 * Lb2 / torch.sqrt(20.0 + Lb2)
    S_C = 1.0 + 0.045 * Cbp
    S_H = 1.0 + 0.015 * Cbp * T
    lt = (L2 - L1) / (kL * S_L)
    ct = (Cp2 - Cp1) / (kC * S_C)
    ht = dH / (kH * S_H)
    return torch.sqrt(lt * lt + ct * ct + ht * ht + R_T * ct * ht)


def make_kernel(formula: str, convention: str | LabConvention = "cie", **options: Any
                ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``kernel(x1, x2, lut) -> (N,) float32`` for two (N, 3) uint8 sRGB chunks (plain torch)."""
    conv = get_convention(convention)

    if formula == "ciede2000":
        kL, kC, kH = (float(options.pop(k, 1.0)) for k in ("kL", "kC", "kH"))

        def kernel(x1, x2, lut):
            return ciede2000_planes(*lab_planes(x1, lut, conv), *lab_planes(x2, lut, conv), kL, kC, kH)
    else:
        delta = {"cie76": delta_e_cie76, "cie94": delta_e_cie94, "cmc": delta_e_cmc}[formula]

        def kernel(x1, x2, lut):
            lab1 = torch.stack(lab_planes(x1, lut, conv), dim=-1)
            lab2 = torch.stack(lab_planes(x2, lut, conv), dim=-1)
            return delta(lab1, lab2, **options)
    return kernel


_COMPILED: dict[tuple, Any] = {}
_FAILED: set[tuple] = set()
_LOCK = threading.Lock()


def compile_enabled(device: torch.device) -> bool:
    """Whether to try ``torch.compile`` (off with ``CDBENCH_COMPILE=0``; on CUDA only with Triton)."""
    if os.environ.get("CDBENCH_COMPILE", "1").lower() in ("0", "false", "no", "off"):
        return False
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
    return device.type in ("cpu", "cuda")


BACKENDS = ("auto", "native", "compile", "eager")


def fused_difference_map(img1: torch.Tensor, img2: torch.Tensor, formula: str = "ciede2000", *,
                         chunk_pixels: int | None = None, compile: bool | None = None, backend: str | None = None,
                         convention: str | LabConvention = "cie", **options: Any) -> torch.Tensor:
    """(H, W) float32 difference map of two (H, W, 3) uint8 sRGB tensors on the same device.

    ``backend`` (default ``$CDBENCH_BACKEND`` or ``"auto"``): ``"native"`` = the C kernel of
    :mod:`cdbench.colour.native` (CIEDE2000 on CPU), ``"compile"`` = ``torch.compile``, ``"eager"`` =
    plain torch; ``"auto"`` = native where it applies, else eager. ``compile=False`` (or
    ``CDBENCH_COMPILE=0``) means eager only.
    """
    if formula not in FUSED_FORMULAS:
        raise ValueError(f"no fused kernel for {formula!r}")
    backend = (backend or os.environ.get("CDBENCH_BACKEND") or "auto").lower()
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if compile is False:
        backend = "eager"
    device = img1.device
    conv = get_convention(convention)
    if device.type == "cpu" and backend in ("auto", "native"):
        from cdbench.colour.native import native_difference_map

        res = native_difference_map(img1, img2, formula, convention=conv, **options)
        if res is not None:
            return res
    if backend in ("eager", "auto", "native"):
        compile = False
    h, w, _ = img1.shape
    n = h * w
    if chunk_pixels is None or chunk_pixels <= 0:
        chunk_pixels = CUDA_CHUNK_PIXELS if device.type == "cuda" else CPU_CHUNK_PIXELS
    x1, x2 = img1.reshape(n, 3), img2.reshape(n, 3)
    lut = srgb_lut(dtype=torch.float32, device=device, convention=conv)
    key = (formula, conv, tuple(sorted(options.items())), device.type, chunk_pixels)
    use_compile = compile_enabled(device) if compile is None else compile
    kernel = None
    if use_compile and key not in _FAILED:
        with _LOCK:
            kernel = _COMPILED.get(key)
            if kernel is None:
                kernel = torch.compile(make_kernel(formula, conv, **dict(options)), dynamic=False)
                _COMPILED[key] = kernel
    # compiled: one fixed chunk shape (the last chunk padded), so every image size reuses one kernel
    chunk = chunk_pixels if kernel is not None else min(chunk_pixels, n)
    eager = make_kernel(formula, conv, **dict(options))
    out = torch.empty(n, dtype=torch.float32, device=device)
    pad1 = pad2 = None
    with torch.inference_mode():
        for s in range(0, n, chunk):
            e = min(s + chunk, n)
            c1, c2 = x1[s:e], x2[s:e]
            if e - s < chunk:  # pad the last chunk: one compiled shape for the whole image
                pad1 = torch.zeros(chunk, 3, dtype=torch.uint8, device=device) if pad1 is None else pad1
                pad2 = torch.zeros(chunk, 3, dtype=torch.uint8, device=device) if pad2 is None else pad2
                pad1[: e - s], pad2[: e - s] = c1, c2
                c1, c2 = pad1, pad2
            if kernel is not None:
                try:
                    res = kernel(c1, c2, lut)
                except Exception as err:  # noqa: BLE001 - any compiler failure: run eagerly
                    warnings.warn(f"cdbench: torch.compile of the fused {formula} kernel failed "
                                  f"({type(err).__name__}: {str(err)[:200]}); using the eager path", stacklevel=2)
                    _FAILED.add(key)
                    _COMPILED.pop(key, None)
                    kernel = None
                    res = eager(c1, c2, lut)
            else:
                res = eager(c1, c2, lut)
            out[s:e] = res[: e - s]
    return out.reshape(h, w)
