"""Pooling a per-pixel difference map into one number per image pair.

``mean`` (the default, and what the SPCD papers report for pixel-wise formulas), ``median`` and
``p95`` (the 95th percentile). Percentiles use linear interpolation between order statistics,
numpy's default (``np.percentile(..., method="linear")``), so results equal numpy's. The mean is
accumulated in float64 whatever the map's dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cdbench.errors import DataError


def pool_mean(values: torch.Tensor) -> float:
    """The mean of all values, accumulated in float64."""
    flat = values.reshape(-1)
    if flat.numel() == 0:
        raise DataError("cannot pool an empty difference map")
    return float(flat.sum(dtype=torch.float64)) / flat.numel()


def pool_percentile(values: torch.Tensor, q: float) -> float:
    """The ``q``-th percentile (0..100) with numpy's linear interpolation."""
    if not 0 <= q <= 100:
        raise DataError(f"percentile must be within 0..100, got {q}")
    flat = values.reshape(-1)
    n = flat.numel()
    if n == 0:
        raise DataError("cannot pool an empty difference map")
    pos = (n - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    v_lo = float(torch.kthvalue(flat, lo + 1).values)
    v_hi = float(torch.kthvalue(flat, hi + 1).values) if hi != lo else v_lo
    return v_lo + (v_hi - v_lo) * frac


def pool_median(values: torch.Tensor) -> float:
    """The median (the mean of the two middle values for an even count, as numpy's)."""
    return pool_percentile(values, 50.0)


def pool_p95(values: torch.Tensor) -> float:
    """The 95th percentile."""
    return pool_percentile(values, 95.0)


POOLINGS: dict[str, Callable[[torch.Tensor], float]] = {"mean": pool_mean, "median": pool_median, "p95": pool_p95}


def get_pooling(name: str) -> Callable[[torch.Tensor], float]:
    """A pooling function by name: ``mean``, ``median``, ``p95`` (or ``pNN`` for any percentile)."""
    key = str(name).lower()
    if key in POOLINGS:
        return POOLINGS[key]
    if key.startswith("p") and key[1:].replace(".", "", 1).isdigit():
        q = float(key[1:])
        if 0 <= q <= 100:
            return lambda v: pool_percentile(v, q)
    raise DataError(f"unknown pooling {name!r}: use mean, median, p95 or pNN (a percentile)")
