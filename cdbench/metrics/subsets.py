"""All metrics of a score prediction, per subset of pairs: ``all``, ``aligned``, ``not_aligned``.

SPCD pairs are *aligned* (same capture, pixel-aligned edits) or *not aligned* (two smartphones'
captures of a scene; :func:`cdbench.data.is_aligned`). CD papers report each subset separately
(Wang et al., TPAMI 2023; Chen et al., CVPR 2023), with the logistic mapping fitted per subset.

For a level-scale model (an LLM's 0..5 level value), STRESS is computed on the human score scale
after mapping the predictions through :func:`cdbench.data.level_value_to_score`, the inverse of
the M-SPCD level formula; the correlations are unchanged by that monotonic map.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from cdbench.data import level_value_to_score
from cdbench.metrics.bootstrap import bootstrap_ci, scene_groups
from cdbench.metrics.correlation import (
    MetricWarning,
    NanPolicy,
    as_pair_arrays,
    correlation_metrics,
    degenerate_reason,
    krcc,
    rmse,
)
from cdbench.metrics.logistic import FitKind, fit_logistic
from cdbench.metrics.stress import stress

SUBSETS: tuple[str, ...] = ("all", "aligned", "not_aligned")
"""The reported subsets, in table order."""

SCORE_METRICS: tuple[str, ...] = ("srcc", "krcc", "plcc", "plcc_raw", "rmse", "stress")
"""The per-subset numbers of a score prediction, in table order."""


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    d = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / d if d > 0 else math.nan


def subset_masks(aligned: Sequence[bool] | np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks of the three subsets from per-pair alignment flags."""
    a = np.asarray(aligned, dtype=bool).ravel()
    return {"all": np.ones_like(a), "aligned": a, "not_aligned": ~a}


def stress_predictions(pred: np.ndarray, scale: str = "difference") -> np.ndarray:
    """Predictions on the human score scale for STRESS: level values mapped back, others as-is."""
    if scale == "level":
        return np.asarray(level_value_to_score(np.asarray(pred, dtype=np.float64)), dtype=np.float64)
    if scale != "difference":
        raise ValueError(f"unknown score scale {scale!r}; expected 'difference' or 'level'")
    return np.asarray(pred, dtype=np.float64)


def score_metrics(pred, human, scenes=None, fit: FitKind = "5pl", n_boot: int = 1000, seed: int = 0,
                  scale: str = "difference", nan_policy: NanPolicy = "propagate", ci_level: float = 0.95) -> dict:
    """Every number of one set of pairs: correlations, fit, STRESS and scene-bootstrap CIs.

    Returns :func:`~cdbench.metrics.correlation_metrics`'s dict plus ``"stress"``,
    ``"n_scenes"`` and ``"ci95"`` (see :func:`~cdbench.metrics.bootstrap.bootstrap_ci`).
    """
    x, y, ok = as_pair_arrays(pred, human, nan_policy)
    sc = None
    if scenes is not None:
        sc = np.asarray(scenes).astype(str).ravel()
        if nan_policy == "omit":
            keep = np.isfinite(np.asarray(pred, float).ravel()) & np.isfinite(np.asarray(human, float).ravel())
            sc = sc[keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)  # already warned by as_pair_arrays
        out = correlation_metrics(x, y, fit=fit)
    sx = stress_predictions(x, scale)
    out["stress"] = stress(sx, y) if ok and x.size else math.nan
    out["n_scenes"] = len(scene_groups(sc, x.size)) if sc is not None else None
    if not ok or degenerate_reason(x, y):
        out["ci95"] = {"level": ci_level, "n_boot": int(n_boot), "seed": int(seed), "note": "degenerate input"}
        if ok:
            warnings.warn(f"metrics are NaN: {degenerate_reason(x, y)}", MetricWarning, stacklevel=2)
        return out
    p0 = out["fit"]["params"] if out["fit"]["kind"] != "none" and np.all(np.isfinite(out["fit"]["params"])) else None

    def statistics(idx: np.ndarray) -> dict[str, float]:
        xi, yi = x[idx], y[idx]
        if degenerate_reason(xi, yi):
            return dict.fromkeys(SCORE_METRICS, math.nan)
        ry = rankdata(yi)
        if fit == "none":
            mapped = xi
        elif p0 is None:
            mapped = np.full_like(xi, np.nan)
        else:
            mapped = fit_logistic(xi, yi, fit, p0=p0, method="lm").predict(xi)
        ok_map = np.all(np.isfinite(mapped))
        # numpy Pearson in the resampling loop (scipy's wrapper costs ms per call; same value to 1e-12)
        return {"srcc": _corr(rankdata(xi), ry), "krcc": krcc(xi, yi),
                "plcc": _corr(mapped, yi) if ok_map else math.nan, "plcc_raw": _corr(xi, yi),
                "rmse": rmse(mapped, yi) if ok_map else math.nan, "stress": stress(sx[idx], yi)}

    out["ci95"] = bootstrap_ci(statistics, x.size, sc, n_boot=n_boot, seed=seed, level=ci_level)
    if out["ci95"]["n_boot"] and fit != "none":
        out["ci95"]["refit"] = "logistic refitted per replicate (Levenberg-Marquardt from the full-sample fit)"
    return out


def subset_metrics(pred, human, aligned, scenes=None, fit: FitKind = "5pl", n_boot: int = 1000, seed: int = 0,
                   scale: str = "difference", nan_policy: NanPolicy = "propagate", ci_level: float = 0.95,
                   subsets: Sequence[str] = SUBSETS) -> dict[str, dict]:
    """:func:`score_metrics` for each subset: ``{"all": {...}, "aligned": {...}, "not_aligned": {...}}``.

    ``aligned`` holds one bool per pair; ``scenes`` one scene id per pair (for the bootstrap; with
    None the bootstrap resamples pairs). An empty subset reports ``n = 0`` and NaN metrics.
    """
    x = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(human, dtype=np.float64).ravel()
    masks = subset_masks(aligned)
    if masks["all"].size != x.size or x.size != y.size:
        raise ValueError(f"pred ({x.size}), human ({y.size}) and aligned ({masks['all'].size}) differ in length")
    sc = None if scenes is None else np.asarray(scenes).astype(str).ravel()
    out = {}
    for name in subsets:
        m = masks[name]
        if not m.any():
            out[name] = {"n": 0, **dict.fromkeys(SCORE_METRICS, math.nan), "n_scenes": 0,
                         "fit": {"kind": fit, "params": [], "initial": [], "converged": False, "message": "no pairs"},
                         "ci95": {"level": ci_level, "n_boot": int(n_boot), "seed": int(seed), "note": "no pairs"}}
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MetricWarning)
            out[name] = score_metrics(x[m], y[m], None if sc is None else sc[m], fit=fit, n_boot=n_boot,
                                      seed=seed, scale=scale, nan_policy=nan_policy, ci_level=ci_level)
        for w in {str(w.message) for w in caught if issubclass(w.category, MetricWarning)}:
            warnings.warn(f"subset {name!r}: {w}", MetricWarning, stacklevel=2)
    return out
