"""Correlation metrics vs scipy, and the logistic fits vs the reference evaluation code."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.optimize import curve_fit, fmin
from scipy.stats import kendalltau, pearsonr, spearmanr

from cdbench.metrics import MetricWarning, correlation_metrics, fit_logistic, logistic_5pl


def _data(n=300, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    human = rng.uniform(1.4, 15.4, n)
    pred = np.log(human) + rng.normal(0, noise, n)
    return pred, human


def _cdnet_reference_coeff_fit(obj, y):
    """The CD-Net / CD-Flow evaluation code (``coeff_func.py``: ``coeff_fit``), transcribed:
    fitfun(t, x) = t0 * (0.5 - 1/(1+exp(t1*(x-t2)))) + t3 + t4*x, Nelder-Mead from
    t = (|max y - min y|, 1/std x, mean x, mean y, -1)."""
    def fitfun(t, x):
        return t[0] * (0.5 - (1 / (1 + np.exp(t[1] * (x - t[2]))))) + t[3] + t[4] * x

    def errfun(t, x, y):
        return np.sum(np.power(y - fitfun(t, x), 2))

    t = np.zeros(5)
    t[2] = np.mean(obj)
    t[3] = np.mean(y)
    t[1] = 1 / np.std(obj)
    t[0] = abs(np.max(y) - np.min(y))
    t[4] = -1
    with np.errstate(over="ignore"):
        tt, _, _, _, warnflag = fmin(errfun, t, args=(obj, y), disp=False, full_output=True)
    fit = fitfun(tt, obj)
    return tt, pearsonr(fit, y)[0], np.sqrt(np.mean((np.abs(y) - np.abs(fit)) ** 2)), warnflag == 0


def _pyiqa_reference_fit_curve(x, y):
    """pyiqa / Q-Align ``fit_curve(x, y, 'logistic_4params')``, transcribed."""
    def logistic_4params(x, beta1, beta2, beta3, beta4):
        return (beta1 - beta2) / (1 + np.exp(-(x - beta3) / beta4)) + beta2

    betas, _ = curve_fit(logistic_4params, x, y, p0=[np.max(y), np.min(y), np.mean(x), np.std(x) / 4.0],
                         maxfev=10000)
    return betas, logistic_4params(x, *betas)


def test_rank_and_raw_correlations_equal_scipy():
    pred, human = _data()
    m = correlation_metrics(pred, human, fit="none")
    assert m["n"] == 300
    assert m["srcc"] == pytest.approx(spearmanr(pred, human).statistic, abs=1e-14)
    assert m["krcc"] == pytest.approx(kendalltau(pred, human).statistic, abs=1e-14)
    assert m["plcc_raw"] == pytest.approx(pearsonr(pred, human).statistic, abs=1e-14)
    assert m["plcc"] == m["plcc_raw"]
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((pred - human) ** 2)), rel=1e-12)


def test_5pl_matches_cdnet_evaluation_code():
    pred, human = _data(seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)  # Nelder-Mead often stops at maxfun, as in the reference
        m = correlation_metrics(pred, human, fit="5pl")
    tt, plcc_ref, rmse_ref, converged_ref = _cdnet_reference_coeff_fit(pred, human)
    # beta order here: (t0, t1, t2, t4 slope, t3 constant)
    ref_params = [tt[0], tt[1], tt[2], tt[4], tt[3]]
    assert m["fit"]["kind"] == "5pl" and m["fit"]["converged"] == converged_ref
    assert m["fit"]["initial"] == pytest.approx([abs(np.ptp(human)), 1 / np.std(pred), np.mean(pred), -1,
                                                 np.mean(human)])
    assert m["fit"]["params"] == pytest.approx(ref_params, rel=1e-6, abs=1e-8)
    assert m["plcc"] == pytest.approx(plcc_ref, abs=1e-10)
    assert m["rmse"] == pytest.approx(rmse_ref, abs=1e-8)


def test_4pl_matches_pyiqa_fit_curve():
    pred, human = _data(seed=4)
    m = correlation_metrics(pred, human, fit="4pl")
    betas, yhat = _pyiqa_reference_fit_curve(pred, human)
    assert m["fit"]["params"] == pytest.approx(list(betas), rel=1e-6)  # expit vs 1/(1+exp): last-ulp steps
    assert m["plcc"] == pytest.approx(pearsonr(yhat, human).statistic, abs=1e-10)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((yhat - human) ** 2)), abs=1e-10)


def test_5pl_recovers_an_exact_logistic():
    x = np.linspace(0, 4, 60)
    y = logistic_5pl(x, 10.0, 2.0, 2.0, 0.5, 6.0)
    f = fit_logistic(x, y, "5pl", method="lm")
    assert f.converged
    assert np.max(np.abs(f.predict(x) - y)) < 1e-6
    m = correlation_metrics(x, y)
    assert m["plcc"] > 0.9999 and m["rmse"] < 0.05


def test_negatively_correlated_measure_is_fitted_with_flipped_sign():
    pred, human = _data(seed=5)
    m = correlation_metrics(-pred, human)
    assert m["srcc"] < 0 and m["plcc_raw"] < 0
    assert m["fit"]["initial"][0] < 0
    assert m["plcc"] > 0.8  # the fitted mapping follows the human scores


@pytest.mark.parametrize("fit", ["5pl", "4pl", "none"])
@pytest.mark.parametrize("pred,human,why", [
    ([2.0, 2.0, 2.0, 2.0], [1.0, 2.0, 3.0, 4.0], "constant"),
    ([1.0, 2.0], [1.0, 2.0], "at least 3"),
    ([], [], "at least 3"),
])
def test_degenerate_input_is_nan_with_warning(fit, pred, human, why):
    with pytest.warns(MetricWarning, match=why):
        m = correlation_metrics(pred, human, fit=fit)
    assert all(math.isnan(m[k]) for k in ("srcc", "krcc", "plcc", "plcc_raw", "rmse"))
    assert m["n"] == len(pred)


def test_nan_policies():
    pred, human = _data(n=50, seed=6)
    p = pred.copy()
    p[[3, 7]] = np.nan
    with pytest.warns(MetricWarning, match="2 of 50"):
        m = correlation_metrics(p, human)
    assert math.isnan(m["srcc"]) and math.isnan(m["plcc"])
    with pytest.warns(MetricWarning, match="left out"):
        m = correlation_metrics(p, human, nan_policy="omit")
    keep = np.isfinite(p)
    assert m["n"] == 48
    assert m["srcc"] == pytest.approx(spearmanr(p[keep], human[keep]).statistic)
    with pytest.raises(ValueError, match="non-finite"):
        correlation_metrics(p, human, nan_policy="raise")


def test_optimiser_failure_never_escapes():
    # two distinct x values: the 5-parameter curve is non-identifiable; must not raise
    x = np.array([0.0, 0.0, 0.0, 1e-9, 1e-9, 1e-9])
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fit in ("5pl", "4pl"):
            m = correlation_metrics(x, y, fit=fit)
            assert isinstance(m["fit"]["converged"], bool)
            assert m["srcc"] == pytest.approx(spearmanr(x, y).statistic)


def test_unknown_fit_and_length_mismatch():
    with pytest.raises(ValueError, match="unknown fit"):
        correlation_metrics([1, 2, 3], [1, 2, 3], fit="3pl")
    with pytest.raises(ValueError, match="differ in length"):
        correlation_metrics([1, 2, 3], [1, 2])


def test_fewer_pairs_than_parameters_never_crashes_the_fit():
    """Levenberg-Marquardt needs at least as many pairs as parameters (scipy raises TypeError):
    a 3-pair 4pl fit and a 4-pair 5pl refit (as a bootstrap on a small subset makes) are NaN fits."""
    from cdbench.metrics import fit_logistic

    x, y = np.array([1.0, 2.0, 4.0, 8.0]), np.array([1.5, 2.5, 3.0, 6.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = correlation_metrics(x[:3], y[:3], fit="4pl")
    assert math.isnan(m["plcc"]) and m["fit"]["converged"] is False
    assert m["srcc"] == pytest.approx(1.0)
    refit = fit_logistic(x, y, "5pl", p0=[1.0, 1.0, 3.0, 0.5, 1.0], method="lm")
    assert refit.converged is False and "at least 5 pairs" in refit.message
    assert fit_logistic(x, y, "5pl").params  # the reference optimiser (Nelder-Mead) still fits 4 pairs
