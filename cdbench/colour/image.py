"""Image-level colour differences: per-pixel difference maps of two sRGB images, and their pooling.

``difference_map(img1, img2, "ciede2000")`` converts both images and applies the formula pixel by
pixel, in chunks of ``chunk_pixels`` pixels so that memory stays at a few arrays of one chunk
(about 100 bytes per pixel of a chunk: ~13 MB at the CPU default of 128K pixels, ~400 MB at the
CUDA default of 4M) besides the inputs and the (H, W) float32 output. For uint8 images and the
CIELAB formulas the fused kernel of :mod:`cdbench.colour.fused` is used (``fast=True``);
otherwise the plain-torch reference path.
The spatial measures (S-CIELAB, S-CIEDE2000) filter whole images: see :mod:`cdbench.colour.spatial`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from cdbench.colour._tensor import as_tensor, check_channels
from cdbench.colour.cam16 import srgb_to_cam16ucs
from cdbench.colour.ciede2000 import delta_e_ciede2000
from cdbench.colour.cielab import srgb_to_lab
from cdbench.colour.difference import delta_e_cam16ucs, delta_e_cie76, delta_e_cie94, delta_e_cmc, delta_e_itp
from cdbench.colour.ictcp import srgb_to_ictcp
from cdbench.colour.pooling import get_pooling
from cdbench.errors import DataError

DEFAULT_CHUNK_PIXELS = 1 << 17  # CPU
CUDA_CHUNK_PIXELS = 1 << 22


@dataclass(frozen=True)
class PixelFormula:
    """A per-pixel formula: the colour space it needs and the difference in that space."""

    name: str
    space: Callable[..., Any]  # sRGB -> space, takes dtype= and the space options
    delta: Callable[..., Any]
    space_options: tuple[str, ...] = ()
    reference: str = ""

    def delta_options(self) -> tuple[str, ...]:
        """The keyword options of the difference function (kL, textiles, l, c, ...)."""
        return tuple(p for p in inspect.signature(self.delta).parameters if p not in ("dtype",))[2:]


PIXEL_FORMULAS: dict[str, PixelFormula] = {
    "ciede2000": PixelFormula("ciede2000", srgb_to_lab, delta_e_ciede2000, ("convention",), "CIE 142-2001"),
    "cie76": PixelFormula("cie76", srgb_to_lab, delta_e_cie76, ("convention",), "CIE 15:2004"),
    "cie94": PixelFormula("cie94", srgb_to_lab, delta_e_cie94, ("convention",), "CIE 116-1995"),
    "cmc": PixelFormula("cmc", srgb_to_lab, delta_e_cmc, ("convention",), "Clarke et al. 1984"),
    "cam16ucs": PixelFormula("cam16ucs", srgb_to_cam16ucs, delta_e_cam16ucs, ("convention", "viewing"),
                             "Li et al. 2017"),
    "itp": PixelFormula("itp", srgb_to_ictcp, delta_e_itp, ("convention", "white_luminance"), "ITU-R BT.2124"),
}


def split_options(formula: PixelFormula, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split keyword options into (colour-space options, difference options); unknown ones are an error."""
    space_kw = {k: v for k, v in options.items() if k in formula.space_options}
    delta_kw = {k: v for k, v in options.items() if k in formula.delta_options()}
    unknown = set(options) - set(space_kw) - set(delta_kw)
    if unknown:
        allowed = (*formula.space_options, *formula.delta_options())
        raise DataError(f"{formula.name}: unknown option(s) {', '.join(sorted(unknown))}; "
                        f"allowed: {', '.join(allowed)}")
    return space_kw, delta_kw


def _image_tensor(img: Any, device: torch.device | str | None) -> torch.Tensor:
    t = as_tensor(img, device=device, keep_integer=True)
    check_channels(t, "image")
    if t.ndim != 3:
        raise DataError(f"an image must have shape (H, W, 3), got {tuple(t.shape)}")
    return t


def difference_map(img1: Any, img2: Any, formula: str = "ciede2000", *, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None, chunk_pixels: int | None = None, fast: bool = True,
                   **options: Any) -> torch.Tensor:
    """The (H, W) map of per-pixel colour differences between two sRGB images of the same size.

    Images: (H, W, 3) uint8 or float in [0, 1], numpy or torch. ``formula``: one of
    ``PIXEL_FORMULAS`` (``ciede2000``, ``cie76``, ``cie94``, ``cmc``, ``cam16ucs``, ``itp``) or a
    spatial one (``s-cielab``, ``s-ciede2000``). ``options`` go to the colour space (``convention``,
    ``viewing``, ``white_luminance``) or the formula (``kL``, ``textiles``, ``l``, ``c``, ...).
    ``dtype=torch.float64`` runs the reference path in float64; the default is float32.
    """
    name = formula.lower()
    if name in ("s-cielab", "s-ciede2000"):
        from cdbench.colour.spatial import spatial_difference_map

        return spatial_difference_map(img1, img2, formula=name, device=device, dtype=dtype, **options)
    if name not in PIXEL_FORMULAS:
        raise DataError(f"unknown formula {formula!r}: use one of "
                        f"{', '.join([*PIXEL_FORMULAS, 's-cielab', 's-ciede2000'])}")
    f = PIXEL_FORMULAS[name]
    space_kw, delta_kw = split_options(f, options)
    t1, t2 = _image_tensor(img1, device), _image_tensor(img2, device)
    if t1.shape != t2.shape:
        raise DataError(f"the two images differ in size: {tuple(t1.shape)} and {tuple(t2.shape)}")
    t2 = t2.to(t1.device)
    if fast and dtype in (None, torch.float32) and t1.dtype == torch.uint8 and t2.dtype == torch.uint8:
        from cdbench.colour import fused

        if fused.supports(name, space_kw, delta_kw):
            return fused.fused_difference_map(t1, t2, name, chunk_pixels=chunk_pixels, **space_kw, **delta_kw)
    if not chunk_pixels or chunk_pixels <= 0:
        chunk_pixels = CUDA_CHUNK_PIXELS if t1.device.type == "cuda" else DEFAULT_CHUNK_PIXELS
    h, w, _ = t1.shape
    work = dtype or (torch.float64 if t1.dtype == torch.float64 else torch.float32)
    flat1, flat2 = t1.reshape(-1, 3), t2.reshape(-1, 3)
    out = torch.empty(h * w, dtype=work, device=t1.device)
    for s in range(0, h * w, chunk_pixels):
        c1 = f.space(flat1[s:s + chunk_pixels], dtype=work, **space_kw)
        c2 = f.space(flat2[s:s + chunk_pixels], dtype=work, **space_kw)
        out[s:s + chunk_pixels] = f.delta(c1, c2, **delta_kw)
    return out.reshape(h, w)


def image_difference(img1: Any, img2: Any, formula: str = "ciede2000", *, pooling: str = "mean",
                     **options: Any) -> float:
    """One number for a pair of images: the pooled :func:`difference_map` (mean, median, p95)."""
    return get_pooling(pooling)(difference_map(img1, img2, formula, **options))
