"""Bootstrap confidence intervals that resample scenes, not pairs.

Pairs of one SPCD scene share content and are correlated, so resampling pairs understates the
uncertainty. Each replicate draws as many scenes as there are, with replacement, and takes all
pairs of the drawn scenes (a cluster bootstrap: Davison & Hinkley, "Bootstrap Methods and their
Application", 1997, sec. 3.8); the interval is the percentile interval of the replicates
(Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13). Seeded: the same seed
gives the same interval on every machine (numpy's PCG64 ``default_rng``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np


def scene_groups(scenes: Sequence[str] | np.ndarray | None, n: int) -> list[np.ndarray]:
    """Index arrays of the pairs of each scene (sorted by scene); one group per pair without scenes."""
    if scenes is None:
        return [np.array([i]) for i in range(n)]
    s = np.asarray(scenes).astype(str)
    if s.size != n:
        raise ValueError(f"scenes and predictions differ in length ({s.size} != {n})")
    uniq, inverse = np.unique(s, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=uniq.size))[:-1]
    return np.split(order, bounds)


def bootstrap_ci(statistics: Callable[[np.ndarray], dict[str, float]], n: int,
                 scenes: Sequence[str] | np.ndarray | None = None, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict:
    """Percentile ``level`` intervals of ``statistics(indices)`` over ``n_boot`` scene resamples.

    ``statistics`` maps an index array (into the ``n`` pairs) to ``{name: value}``. Returns
    ``{"level", "n_boot", "seed", "unit": "scene"|"pair", "n_units", "<name>": [low, high], ...}``;
    the intervals are NaN when fewer than 2 scenes (or ``n_boot == 0``) make resampling meaningless.
    Replicates where a statistic is NaN (a degenerate resample) are left out of its interval.
    """
    if not (0 < level < 1):
        raise ValueError(f"level must be in (0, 1), got {level}")
    groups = scene_groups(scenes, n)
    out: dict = {"level": level, "n_boot": int(n_boot), "seed": int(seed),
                 "unit": "scene" if scenes is not None else "pair", "n_units": len(groups)}
    if n_boot <= 0 or len(groups) < 2:
        names = statistics(np.arange(n)).keys() if n else ()
        out.update({k: [math.nan, math.nan] for k in names})
        if n_boot > 0:
            out["note"] = f"no interval: {len(groups)} {out['unit']}(s); resampling needs at least 2"
        return out
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(groups), size=(n_boot, len(groups)))
    values: dict[str, list[float]] = {}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for row in draws:
            idx = np.concatenate([groups[g] for g in row])
            for k, v in statistics(idx).items():
                values.setdefault(k, []).append(v)
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    for k, vals in values.items():
        a = np.asarray(vals, dtype=np.float64)
        a = a[np.isfinite(a)]
        out[k] = [float(np.percentile(a, lo_q)), float(np.percentile(a, hi_q))] if a.size else [math.nan, math.nan]
        if a.size < n_boot:
            out.setdefault("degenerate_replicates", {})[k] = int(n_boot - a.size)
    return out
