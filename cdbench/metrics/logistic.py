"""Logistic mappings from a model's predictions to human scores, fitted before PLCC / RMSE.

Two published variants, because CD and IQA papers disagree and their PLCCs are not comparable:

* ``"5pl"``: the five-parameter logistic of the CD-Net / CD-Flow evaluation code (Chen et al.,
  "Learning a Deep Color Difference Metric for Photographic Images", CVPR 2023; its
  ``coeff_func.py``, after Sheikh et al. 2006 / VQEG)::

      y = beta1 * (0.5 - 1 / (1 + exp(beta2 * (x - beta3)))) + beta4 * x + beta5

  started at ``beta1 = |max(y) - min(y)|``, ``beta2 = 1 / std(x)``, ``beta3 = mean(x)``,
  ``beta4 = -1``, ``beta5 = mean(y)`` and minimised (sum of squared errors) with
  ``scipy.optimize.fmin`` (Nelder-Mead, default tolerances), exactly as that code does. The
  reference flips the sign of ``beta1`` when the Pearson *p-value* is <= 0 (which never happens);
  here it is flipped when the Pearson *correlation* is negative (the evident intent). Both agree
  for every measure positively correlated with the human scores.
* ``"4pl"``: the four-parameter logistic of pyiqa / Q-Align's ``fit_curve`` (VQEG)::

      y = (beta1 - beta2) / (1 + exp(-(x - beta3) / beta4)) + beta2

  started at ``(max(y), min(y), mean(x), std(x) / 4)`` and fitted with
  ``scipy.optimize.curve_fit(maxfev=10000)`` (Levenberg-Marquardt).
* ``"none"``: the identity (PLCC equals the raw Pearson correlation).

:func:`fit_logistic` never lets an optimiser error escape: a failed or degenerate fit comes back
with ``converged=False`` and a message, and the caller reports NaN with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.special import expit

FitKind = Literal["5pl", "4pl", "none"]
FIT_KINDS: tuple[str, ...] = ("5pl", "4pl", "none")


def logistic_5pl(x, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    """``b1 * (0.5 - 1 / (1 + exp(b2 * (x - b3)))) + b4 * x + b5`` (CD-Net / Sheikh et al. 2006).

    ``1 / (1 + exp(z))`` is evaluated as ``expit(-z)`` (no overflow for large ``|z|``).
    """
    x = np.asarray(x, dtype=np.float64)
    return b1 * (0.5 - expit(-b2 * (x - b3))) + b4 * x + b5


def logistic_4pl(x, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """``(b1 - b2) / (1 + exp(-(x - b3) / b4)) + b2`` (VQEG; pyiqa / Q-Align ``fit_curve``)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return (b1 - b2) * expit((x - b3) / b4) + b2


@dataclass
class LogisticFit:
    """A fitted mapping: ``kind``, ``params`` (beta1..), ``initial`` values, ``converged`` and a
    ``message`` from the optimiser. ``predict(x)`` applies it."""

    kind: str
    params: list[float] = field(default_factory=list)
    initial: list[float] = field(default_factory=list)
    converged: bool = True
    message: str = ""

    def predict(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "none":
            return x.copy()
        if not self.params or not np.all(np.isfinite(self.params)):
            return np.full_like(x, np.nan)
        f = logistic_5pl if self.kind == "5pl" else logistic_4pl
        return f(x, *self.params)

    def to_dict(self) -> dict:
        """The ``fit`` block of a metrics file."""
        return {"kind": self.kind, "params": [float(p) for p in self.params],
                "initial": [float(p) for p in self.initial], "converged": bool(self.converged),
                "message": self.message}


def initial_5pl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CD-Net's starting values ``(|max y - min y|, 1/std x, mean x, -1, mean y)``, in beta order."""
    b1 = abs(np.max(y) - np.min(y))
    if np.corrcoef(x, y)[0, 1] < 0:
        b1 = -b1
    return np.array([b1, 1.0 / np.std(x), np.mean(x), -1.0, np.mean(y)])


def initial_4pl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """pyiqa's starting values ``(max y, min y, mean x, std x / 4)``."""
    return np.array([np.max(y), np.min(y), np.mean(x), np.std(x) / 4.0])


def _sse_5pl(t: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    r = y - logistic_5pl(x, *t)
    return float(r @ r)


def fit_logistic(pred: Sequence[float] | np.ndarray, human: Sequence[float] | np.ndarray,
                 kind: FitKind = "5pl", p0: Sequence[float] | None = None,
                 method: Literal["reference", "lm"] = "reference") -> LogisticFit:
    """Fit the logistic ``kind`` mapping predictions ``pred`` to human scores ``human``.

    ``method="reference"`` reproduces each reference's optimiser (Nelder-Mead for 5pl,
    Levenberg-Marquardt for 4pl); ``method="lm"`` uses ``curve_fit`` for both (the bootstrap's
    fast refits, warm-started from ``p0``). Inputs must be finite, with at least 3 pairs and
    non-constant predictions, else the fit is returned with ``converged=False``.
    """
    if kind not in FIT_KINDS:
        raise ValueError(f"unknown fit {kind!r}; expected one of {', '.join(FIT_KINDS)}")
    x = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(human, dtype=np.float64).ravel()
    if kind == "none":
        return LogisticFit("none")
    n_params = 5 if kind == "5pl" else 4
    if x.size < 3 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return LogisticFit(kind, [np.nan] * n_params, [], False, "needs at least 3 finite pairs")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return LogisticFit(kind, [np.nan] * n_params, [], False, "constant predictions or human scores")
    uses_lm = kind == "4pl" or method == "lm"
    if uses_lm and x.size < n_params:  # Levenberg-Marquardt needs at least as many pairs as parameters
        return LogisticFit(kind, [np.nan] * n_params, [], False, f"needs at least {n_params} pairs for {kind}")
    init = np.asarray(p0, dtype=np.float64) if p0 is not None else (
        initial_5pl(x, y) if kind == "5pl" else initial_4pl(x, y))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            if not uses_lm:
                from scipy.optimize import fmin

                params, _fopt, _it, _nfev, flag = fmin(_sse_5pl, init, args=(x, y), full_output=True, disp=False)
                ok = flag == 0
                msg = {0: "converged", 1: "maximum number of function evaluations reached",
                       2: "maximum number of iterations reached"}.get(int(flag), f"warnflag {flag}")
            else:
                from scipy.optimize import curve_fit

                f = logistic_5pl if kind == "5pl" else logistic_4pl
                # the reference 4pl budget; the bootstrap's warm-started refits get a smaller one
                maxfev = 10000 if method == "reference" else 20 * (n_params + 1)
                params, _ = curve_fit(f, x, y, p0=init, maxfev=maxfev)
                ok, msg = True, "converged"
        except (RuntimeError, ValueError, FloatingPointError, np.linalg.LinAlgError) as e:
            if method == "lm" and p0 is not None and "maxfev" in str(e):
                return LogisticFit(kind, init.tolist(), init.tolist(), False, "refit budget exhausted; start kept")
            return LogisticFit(kind, [np.nan] * n_params, init.tolist(), False, str(e).splitlines()[0])
    params = np.asarray(params, dtype=np.float64)
    if not np.all(np.isfinite(params)) or not np.all(np.isfinite(LogisticFit(kind, params.tolist()).predict(x))):
        return LogisticFit(kind, params.tolist(), init.tolist(), False, "non-finite fitted curve")
    return LogisticFit(kind, params.tolist(), init.tolist(), bool(ok), msg)
