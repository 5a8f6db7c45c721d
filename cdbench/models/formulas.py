"""The classic colour-difference formulas as models: ``create_model("ciede2000").score(pairs)``.

Registered names (kind ``"formula"``, scale ``"difference"``, larger = more different):
``ciede2000``, ``cie76``, ``cie94``, ``cmc``, ``cam16ucs``, ``itp``, ``s-cielab``, ``s-ciede2000``.
A pair's score is the pooled per-pixel difference map (``pooling="mean"`` by default; ``"median"``,
``"p95"`` or any ``"pNN"``). ``difference_map(pair)`` returns the map itself.

``score(pairs)`` decodes each unique image once per call (:func:`cdbench.data.images.iter_pairs`:
parallel decoding threads, each image released after its last pair). Each image is also converted
once per call and reused by its pairs (SPCD uses each image about four times): to planar CIELAB
by the native kernel for the CIELAB formulas on CPU, filtered for S-CIELAB / S-CIEDE2000, to
CAM16-UCS or ICtCp (``LAB_CACHE_IMAGES`` most recent images); elsewhere (``fast=False``, float64,
GPU) the fused or reference kernels of :mod:`cdbench.colour` run per pair, chunk by chunk.
Memory bound: the decoded images still needed (SPCD: a scene's images, 3 MB each at 1024x1024) +
the decode-ahead window (``2 * workers + 2`` images) + one pair's float32 map (4 bytes per pixel)
+ a chunk's working set (about 100 bytes x ``chunk_pixels``: 13 MB at the default) + the
per-image cache (12 bytes per pixel, 8 images: 96 MB at 1024x1024).

Images of different sizes: ``resize="error"`` (default) raises a :class:`~cdbench.errors.DataError`
naming both images; ``resize="first"`` resamples the second image to the first one's size and
``resize="smaller"`` both to the smaller one's (Pillow Lanczos on the 8-bit sRGB values).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cdbench.colour.image import PIXEL_FORMULAS, difference_map
from cdbench.colour.pooling import get_pooling
from cdbench.data.images import iter_pairs, load_image
from cdbench.errors import DataError, ModelError
from cdbench.models.base import CDModel, Pair
from cdbench.models.registry import register_model

RESIZE_POLICIES = ("error", "first", "smaller")
FORMULA_DEFAULTS: dict[str, dict[str, Any]] = {
    "ciede2000": {"kL": 1.0, "kC": 1.0, "kH": 1.0},
    "cie94": {"textiles": False, "kC": 1.0, "kH": 1.0},
    "cmc": {"l": 2.0, "c": 1.0},
    "cam16ucs": {"viewing": "L_A=4.074 cd/m2, Y_b=20, average surround, D65 white (CIE convention)"},
    "itp": {"white_luminance": 100.0},
    "s-cielab": {"pixels_per_degree": 41.0},
    "s-ciede2000": {"pixels_per_degree": 41.0, "kL": 1.0, "kC": 1.0, "kH": 1.0},
}
"""The defaults recorded by ``settings()`` (every number that defines a model's output)."""
LAB_CACHE_IMAGES = 8
"""The CIELAB formulas on CPU keep the planar CIELAB of the last 8 images of a ``score`` call (12 bytes per
pixel: 96 MB at 1024x1024), so an image shared by several pairs is converted once (SPCD: ~4 pairs)."""
SPATIAL_FORMULAS = ("s-cielab", "s-ciede2000")
PER_IMAGE_SPACES = ("cam16ucs", "itp")  # colour space converted once per image, then a Euclidean difference
FORMULA_NAMES = (*PIXEL_FORMULAS, *SPATIAL_FORMULAS)


def _describe_image(image: Any) -> str:
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    return f"<{type(image).__name__}>"


def _resample(arr: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    h, w = size_hw
    if arr.dtype == np.uint8:
        return np.array(Image.fromarray(arr).resize((w, h), Image.Resampling.LANCZOS))
    chans = [np.asarray(Image.fromarray(arr[..., i].astype(np.float32), mode="F").resize((w, h),
                                                                                     Image.Resampling.LANCZOS))
             for i in range(3)]
    return np.stack(chans, axis=-1)


class FormulaModel(CDModel):
    """A classic colour-difference formula applied per pixel and pooled per pair (see the module docstring)."""

    kind = "formula"
    scale = "difference"
    can_describe = False

    def __init__(self, formula: str, *, pooling: str = "mean", device: str | torch.device = "cpu",
                 resize: str = "error", chunk_pixels: int | None = None, workers: int | None = None,
                 fast: bool = True, dtype: str | torch.dtype | None = None, **options: Any):
        formula = formula.lower()
        if formula not in FORMULA_NAMES:
            raise ModelError(f"unknown formula {formula!r}: use one of {', '.join(FORMULA_NAMES)}")
        if resize not in RESIZE_POLICIES:
            raise ModelError(f"resize must be one of {', '.join(RESIZE_POLICIES)}, got {resize!r}")
        self.name = formula
        self.formula = formula
        self.pooling = str(pooling).lower()
        try:
            self._pool = get_pooling(self.pooling)
        except DataError as e:
            raise ModelError(str(e)) from None
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ModelError("device='cuda' was asked for but CUDA is not available")
        self.resize = resize
        self.chunk_pixels = chunk_pixels
        self.workers = workers
        self.fast = bool(fast)
        if isinstance(dtype, str):
            dtype = {"float32": torch.float32, "float64": torch.float64}.get(dtype)
            if dtype is None:
                raise ModelError("dtype must be 'float32' or 'float64'")
        self.dtype = dtype
        self.options = dict(options)
        try:  # validate the options once, on a 1x1 pair
            px = np.zeros((1, 1, 3), dtype=np.uint8)
            difference_map(px, px, formula, device="cpu", fast=False, **self._map_kwargs())
        except (DataError, TypeError, ValueError) as e:
            raise ModelError(f"{formula}: {e}") from None

    def _map_kwargs(self) -> dict[str, Any]:
        kw = dict(self.options)
        if self.formula not in SPATIAL_FORMULAS and self.chunk_pixels:
            kw["chunk_pixels"] = self.chunk_pixels
        if self.dtype is not None:
            kw["dtype"] = self.dtype
        return kw

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {"formula": self.formula, "pooling": self.pooling, "resize": self.resize,
                               "dtype": str(self.dtype or torch.float32).replace("torch.", "")}
        out.update({k: (v if isinstance(v, (int, float, str, bool)) or v is None else repr(v))
                    for k, v in self.options.items()})
        for k, v in FORMULA_DEFAULTS.get(self.formula, {}).items():
            out.setdefault(k, v)
        out.setdefault("convention", "cie")
        return out

    def _match_sizes(self, a: np.ndarray, b: np.ndarray, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
        if a.shape == b.shape:
            return a, b
        if self.resize == "error":
            raise DataError(f"images of different sizes in a pair: {_describe_image(pair[0])} is "
                            f"{a.shape[1]}x{a.shape[0]}, {_describe_image(pair[1])} is {b.shape[1]}x{b.shape[0]} "
                            f"(use resize='first' or resize='smaller')")
        if self.resize == "first":
            return a, _resample(b, a.shape[:2])
        size = min(a.shape[:2], b.shape[:2], key=lambda s: s[0] * s[1])
        return (a if a.shape[:2] == size else _resample(a, size)), (b if b.shape[:2] == size else _resample(b, size))

    def _native_lab(self) -> bool:
        """Whether pairs go through the native per-image CIELAB cache (CIELAB formulas on CPU)."""
        from cdbench.colour import native

        if (self.formula not in native.NATIVE_FORMULAS or self.device.type != "cpu" or not self.fast
                or self.dtype == torch.float64):
            return False
        return native.available()

    @staticmethod
    def _per_image(arr: np.ndarray, cache: OrderedDict, convert) -> torch.Tensor:
        """``convert(arr)``, computed once per image and kept in a small LRU ``cache`` for the call
        (an image is in about four SPCD pairs). Entries hold ``arr`` so its ``id`` is not reused."""
        key = id(arr)
        hit = cache.get(key)
        if hit is not None and hit[0] is arr:
            cache.move_to_end(key)
            return hit[1]
        value = convert(arr)
        cache[key] = (arr, value)
        while len(cache) > LAB_CACHE_IMAGES:
            cache.popitem(last=False)
        return value

    def _cached_lab(self, arr: np.ndarray, cache: OrderedDict) -> torch.Tensor:
        from cdbench.colour.native import native_lab_planes

        convention = self.options.get("convention", "cie")
        return self._per_image(arr, cache, lambda x: native_lab_planes(torch.from_numpy(np.ascontiguousarray(x)),
                                                                       convention=convention))

    def _cached_scielab(self, arr: np.ndarray, cache: OrderedDict) -> torch.Tensor:
        from cdbench.colour.spatial import srgb_to_scielab

        kw = {k: v for k, v in self.options.items() if k in ("pixels_per_degree", "convention")}
        return self._per_image(arr, cache, lambda x: srgb_to_scielab(np.ascontiguousarray(x), dtype=self.dtype,
                                                                     device=self.device, **kw))

    def _spatial_map(self, a: np.ndarray, b: np.ndarray, cache: OrderedDict) -> torch.Tensor:
        """S-CIELAB / S-CIEDE2000 from the per-image filtered CIELAB (each image filtered once per call)."""
        from cdbench.colour import delta_e_cie76, delta_e_ciede2000, native

        la, lb = self._cached_scielab(a, cache), self._cached_scielab(b, cache)
        formula = "cie76" if self.formula == "s-cielab" else "ciede2000"
        opts = {k: v for k, v in self.options.items() if k in ("kL", "kC", "kH")}
        if self.device.type == "cpu" and la.dtype == torch.float32 and self.fast and native.available():
            return native.native_delta_from_lab(la.permute(2, 0, 1).contiguous(), lb.permute(2, 0, 1).contiguous(),
                                                formula, **opts)
        return delta_e_cie76(la, lb) if formula == "cie76" else delta_e_ciede2000(la, lb, **opts)

    def _cached_space(self, arr: np.ndarray, cache: OrderedDict) -> torch.Tensor:
        """The image in the formula's colour space (CAM16-UCS, ICtCp), converted in chunks, once per call."""
        f = PIXEL_FORMULAS[self.formula]
        kw = {k: v for k, v in self.options.items() if k in f.space_options}

        def convert(x: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
            h, w, _ = t.shape
            flat = t.reshape(-1, 3)
            out = torch.empty(h * w, 3, dtype=self.dtype or torch.float32, device=self.device)
            step = self.chunk_pixels or (1 << 22 if self.device.type == "cuda" else 1 << 17)
            for s in range(0, h * w, step):
                out[s:s + step] = f.space(flat[s:s + step], dtype=out.dtype, **kw)
            return out.reshape(h, w, 3)

        return self._per_image(arr, cache, convert)

    def _map(self, a: np.ndarray, b: np.ndarray, pair: Pair, lab_cache: OrderedDict | None = None) -> torch.Tensor:
        if lab_cache is not None and self.formula in SPATIAL_FORMULAS:
            a, b = self._match_sizes(a, b, pair)
            if a.dtype == b.dtype:
                return self._spatial_map(a, b, lab_cache)
        if lab_cache is not None and self.formula in PER_IMAGE_SPACES:
            a, b = self._match_sizes(a, b, pair)
            if a.dtype == b.dtype:
                f = PIXEL_FORMULAS[self.formula]
                kw = {k: v for k, v in self.options.items() if k in f.delta_options()}
                return f.delta(self._cached_space(a, lab_cache), self._cached_space(b, lab_cache), **kw)
        if (lab_cache is not None and a.dtype == np.uint8 and b.dtype == np.uint8 and a.shape == b.shape
                and a.ndim == 3 and a.shape[-1] == 3):
            from cdbench.colour.native import native_delta_from_lab

            opts = {k: v for k, v in self.options.items() if k != "convention"}
            return native_delta_from_lab(self._cached_lab(a, lab_cache), self._cached_lab(b, lab_cache),
                                         self.formula, **opts)
        a, b = self._match_sizes(a, b, pair)
        ta = torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
        tb = torch.from_numpy(np.ascontiguousarray(b)).to(self.device)
        if ta.dtype != tb.dtype:  # one uint8, one float: compare both as float in [0, 1]
            ta = ta.float() / 255 if ta.dtype == torch.uint8 else ta.float()
            tb = tb.float() / 255 if tb.dtype == torch.uint8 else tb.float()
        return difference_map(ta, tb, self.formula, device=self.device, fast=self.fast, **self._map_kwargs())

    def difference_map(self, pair: Pair) -> np.ndarray:
        """The (H, W) float map of per-pixel differences of one pair (after the resize policy)."""
        a, b = load_image(pair[0]), load_image(pair[1])
        return self._map(a, b, pair).cpu().numpy()

    def score(self, pairs: Sequence[Pair], *, progress: bool = False) -> np.ndarray:
        """One float64 per pair: the pooled difference map; each unique image decoded once."""
        pairs = list(pairs)
        out = np.full(len(pairs), np.nan, dtype=np.float64)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(pairs), desc=f"{self.name}", unit="pair")
        per_image = self._native_lab() or self.formula in (*SPATIAL_FORMULAS, *PER_IMAGE_SPACES)
        lab_cache: OrderedDict | None = OrderedDict() if per_image else None
        try:
            for i, a, b in iter_pairs(pairs, workers=self.workers):
                out[i] = self._pool(self._map(a, b, pairs[i], lab_cache))
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return out


def _factory(formula: str):
    def create(**options: Any) -> FormulaModel:
        return FormulaModel(formula, **options)

    create.__name__ = f"create_{formula.replace('-', '_')}"
    create.__doc__ = f"Create the {formula!r} formula model (options: see FormulaModel)."
    return create


for _name in FORMULA_NAMES:
    register_model(_name)(_factory(_name))
