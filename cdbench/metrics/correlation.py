"""Correlation between a model's predictions and human colour-difference scores.

SRCC (Spearman) and KRCC (Kendall tau-b) are scipy's, on the raw predictions (a monotonic
mapping does not change them). PLCC (Pearson) and RMSE are computed after the logistic mapping
of :mod:`cdbench.metrics.logistic` (``fit="5pl"``: CD-Net's, the CD papers' convention;
``"4pl"``: pyiqa's; ``"none"``: no mapping), and ``plcc_raw`` without any mapping. The fitted
parameters, starting values and a convergence flag are part of the result, so a PLCC can be
reproduced (VQEG, "Final report on the validation of objective models of video quality", 2000;
Sheikh et al., IEEE TIP 15(11), 2006).

Degenerate input never crashes: fewer than 3 pairs, constant predictions or non-finite values
give NaN with a :class:`MetricWarning` that says why.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np

from cdbench.metrics.logistic import FIT_KINDS, FitKind, LogisticFit, fit_logistic


class MetricWarning(UserWarning):
    """A metric could not be computed on this input (it is reported as NaN)."""


NanPolicy = Literal["propagate", "omit", "raise"]


def as_pair_arrays(pred, human, nan_policy: NanPolicy = "propagate", what: str = "predictions"
                   ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Two float64 vectors of equal length; ``ok`` is False when a non-finite value remains.

    ``nan_policy``: ``"omit"`` drops pairs with a non-finite value (with a warning),
    ``"raise"`` raises ValueError, ``"propagate"`` keeps them (metrics become NaN, with a warning).
    """
    x = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(human, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{what} and human scores differ in length ({x.size} != {y.size})")
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        msg = f"{int(bad.sum())} of {x.size} pairs have a non-finite prediction or human score"
        if nan_policy == "raise":
            raise ValueError(msg)
        if nan_policy == "omit":
            warnings.warn(msg + "; they are left out", MetricWarning, stacklevel=3)
            return x[~bad], y[~bad], True
        warnings.warn(msg + "; the metrics are NaN (use nan_policy='omit' to leave them out)",
                      MetricWarning, stacklevel=3)
        return x, y, False
    return x, y, True


def degenerate_reason(x: np.ndarray, y: np.ndarray) -> str | None:
    """Why correlations cannot be computed on ``x``/``y`` (None when they can)."""
    if x.size < 3:
        return f"{x.size} pairs (at least 3 are needed)"
    if np.ptp(x) == 0:
        return "the predictions are constant"
    if np.ptp(y) == 0:
        return "the human scores are constant"
    return None


def srcc(pred, human) -> float:
    """Spearman rank correlation (scipy.stats.spearmanr); NaN for degenerate input."""
    from scipy.stats import spearmanr

    x, y = np.asarray(pred, float), np.asarray(human, float)
    if degenerate_reason(x, y):
        return math.nan
    return float(spearmanr(x, y).statistic)


def krcc(pred, human) -> float:
    """Kendall rank correlation, tau-b (scipy.stats.kendalltau); NaN for degenerate input."""
    from scipy.stats import kendalltau

    x, y = np.asarray(pred, float), np.asarray(human, float)
    if degenerate_reason(x, y):
        return math.nan
    return float(kendalltau(x, y).statistic)


def pearson(x, y) -> float:
    """Pearson linear correlation (scipy.stats.pearsonr); NaN for degenerate input."""
    from scipy.stats import pearsonr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if degenerate_reason(x, y) or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return math.nan
    return float(pearsonr(x, y).statistic)


def rmse(x, y) -> float:
    """Root mean squared error ``sqrt(mean((x - y)^2))``."""
    d = np.asarray(x, float) - np.asarray(y, float)
    return float(np.sqrt(np.mean(d * d))) if d.size else math.nan


def correlation_metrics(pred: Sequence[float] | np.ndarray, human: Sequence[float] | np.ndarray,
                        fit: FitKind = "5pl", nan_policy: NanPolicy = "propagate",
                        fit_p0: Sequence[float] | None = None, fit_method: str = "reference") -> dict:
    """SRCC, KRCC, PLCC and RMSE after the ``fit`` mapping, and PLCC without it.

    Returns ``{"n", "srcc", "krcc", "plcc", "plcc_raw", "rmse", "fit": {"kind", "params",
    "initial", "converged", "message"}}``. With ``fit="none"``, ``plcc == plcc_raw`` and RMSE is
    taken on the raw predictions. A fit that does not converge is kept (the reference code keeps
    it too) and flagged; a fit that fails gives NaN PLCC/RMSE with a warning.
    """
    if fit not in FIT_KINDS:
        raise ValueError(f"unknown fit {fit!r}; expected one of {', '.join(FIT_KINDS)}")
    x, y, ok = as_pair_arrays(pred, human, nan_policy)
    nan = math.nan
    out = {"n": int(x.size), "srcc": nan, "krcc": nan, "plcc": nan, "plcc_raw": nan, "rmse": nan}
    reason = "non-finite values" if not ok else degenerate_reason(x, y)
    if reason:
        if ok:
            warnings.warn(f"correlations are NaN: {reason}", MetricWarning, stacklevel=2)
        out["fit"] = LogisticFit(fit, [], [], fit == "none", reason).to_dict()
        return out
    out["srcc"], out["krcc"], out["plcc_raw"] = srcc(x, y), krcc(x, y), pearson(x, y)
    lf = fit_logistic(x, y, fit, p0=fit_p0, method=fit_method)  # type: ignore[arg-type]
    mapped = lf.predict(x)
    if np.all(np.isfinite(mapped)):
        out["plcc"], out["rmse"] = pearson(mapped, y), rmse(mapped, y)
    else:
        warnings.warn(f"the {fit} logistic fit failed ({lf.message}); PLCC and RMSE are NaN",
                      MetricWarning, stacklevel=2)
    if not lf.converged and np.all(np.isfinite(mapped)):
        warnings.warn(f"the {fit} logistic fit did not converge ({lf.message}); PLCC/RMSE use its last "
                      "parameters, as the reference code does", MetricWarning, stacklevel=2)
    out["fit"] = lf.to_dict()
    return out
