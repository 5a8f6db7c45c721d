"""STRESS, the standardised residual sum of squares of colour-difference research, and its F-test.

Reference: P. A. Garcia, R. Huertas, M. Melgosa, G. Cui, "Measurement of the relationship between
perceived and computed color differences", JOSA A 24(7), 1823-1829, 2007, eq. (4)-(5)::

    F1 = sum(dE^2) / sum(dE * dV)
    STRESS = 100 * sqrt( sum((dE - F1 * dV)^2) / (F1^2 * sum(dV^2)) )

with ``dE`` the computed and ``dV`` the perceived (human) differences. STRESS is in 0..100 (the
CD literature's scale), 0 = perfect agreement up to a scale factor, lower is better.
``colour.index_stress`` (colour-science) returns the same quantity as a *fraction* (0..1): multiply
by 100 to compare.

Significance between measures A and B (same pairs): ``F = STRESS_A^2 / STRESS_B^2`` follows an
F distribution with ``(N - 1, N - 1)`` degrees of freedom; with the two-tailed critical value
``F_C = F^-1(alpha / 2; N - 1, N - 1)``, A is significantly better when ``F < F_C``, significantly
worse when ``F > 1 / F_C``, and otherwise the difference is not significant (Garcia et al. 2007).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from cdbench.metrics.correlation import MetricWarning, NanPolicy, as_pair_arrays


def stress(pred: Sequence[float] | np.ndarray, human: Sequence[float] | np.ndarray,
           nan_policy: NanPolicy = "propagate") -> float:
    """STRESS (Garcia et al. 2007) of computed differences ``pred`` vs human ``human``, 0..100.

    Predictions must be colour *differences* on a ratio scale (a level-scale model's values are
    mapped to the human score scale first, see :func:`cdbench.metrics.subset_metrics`). NaN with a
    warning when the input is empty, non-finite, or ``sum(dE * dV) <= 0`` (F1 undefined).
    """
    dE, dV, ok = as_pair_arrays(pred, human, nan_policy)
    if not ok:
        return math.nan
    if dE.size == 0:
        warnings.warn("STRESS is NaN: no pairs", MetricWarning, stacklevel=2)
        return math.nan
    cross = float(dE @ dV)
    if cross <= 0 or float(dV @ dV) == 0:
        warnings.warn("STRESS is NaN: sum(dE * dV) <= 0 (predictions not positive colour differences)",
                      MetricWarning, stacklevel=2)
        return math.nan
    f1 = float(dE @ dE) / cross
    r = dE - f1 * dV
    return 100.0 * math.sqrt(float(r @ r) / (f1 * f1 * float(dV @ dV)))


def stress_f_test(stress_a: float, stress_b: float, n: int, alpha: float = 0.05) -> dict:
    """Garcia et al. (2007) F-test: is measure A's STRESS significantly different from B's?

    ``n`` is the number of pairs both STRESS values were computed on. Returns ``{"f", "df",
    "alpha", "f_critical_low", "f_critical_high", "p_value", "verdict"}`` where ``verdict`` is
    ``"A better"``, ``"B better"`` or ``"not significant"`` and ``p_value`` is two-sided.
    """
    from scipy.stats import f as f_dist

    if n < 2:
        raise ValueError(f"the STRESS F-test needs at least 2 pairs, got {n}")
    if not (0 < alpha < 1):
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    df = n - 1
    fc = float(f_dist.ppf(alpha / 2.0, df, df))
    out = {"f": math.nan, "df": [df, df], "alpha": alpha, "f_critical_low": fc, "f_critical_high": 1.0 / fc,
           "p_value": math.nan, "verdict": "not significant"}
    if not (math.isfinite(stress_a) and math.isfinite(stress_b)) or stress_b == 0:
        warnings.warn("STRESS F-test undefined (a STRESS value is NaN, or STRESS_B is 0)", MetricWarning,
                      stacklevel=2)
        out["verdict"] = "undefined"
        return out
    f = (stress_a / stress_b) ** 2
    p = 2.0 * min(float(f_dist.cdf(f, df, df)), float(f_dist.sf(f, df, df)))
    out.update(f=f, p_value=min(p, 1.0))
    if f < fc:
        out["verdict"] = "A better"
    elif f > 1.0 / fc:
        out["verdict"] = "B better"
    return out


def compare_stress(pred_a, pred_b, human, alpha: float = 0.05) -> dict:
    """STRESS of two measures on the same pairs and their F-test: ``{"stress_a", "stress_b", ...}``."""
    sa, sb = stress(pred_a, human), stress(pred_b, human)
    return {"stress_a": sa, "stress_b": sb, **stress_f_test(sa, sb, len(np.ravel(human)), alpha)}
