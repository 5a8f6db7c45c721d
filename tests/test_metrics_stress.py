"""STRESS (Garcia et al. 2007) vs a hand computation and colour-science, and its F-test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import f as f_dist

from cdbench.metrics import MetricWarning, compare_stress, stress, stress_f_test


def test_stress_hand_computed():
    # dE = (1, 2, 3), dV = (1, 2, 4): F1 = 14/17, residuals (3, 6, -5)/17,
    # STRESS = 100 * sqrt((70/289) / ((196/289) * 21)) = 100 * sqrt(70 / 4116)
    assert stress([1.0, 2.0, 3.0], [1.0, 2.0, 4.0]) == pytest.approx(100 * math.sqrt(70 / 4116), rel=1e-14)


def test_stress_equals_colour_science_times_100():
    colour = pytest.importorskip("colour")
    rng = np.random.default_rng(1)
    dv = rng.uniform(1, 15, 200)
    de = dv * rng.lognormal(0, 0.3, 200)
    assert stress(de, dv) == pytest.approx(100 * float(colour.index_stress(de, dv)), rel=1e-12)
    # colour-science's own docstring example (0.1211709... as a fraction)
    assert stress([2.0425, 2.8615, 3.4412], [1.2644, 1.2630, 1.8731]) == pytest.approx(12.11709, abs=1e-5)


def test_stress_properties():
    rng = np.random.default_rng(2)
    dv = rng.uniform(1, 15, 100)
    de = dv + rng.normal(0, 1, 100)
    assert stress(dv * 3.7, dv) == pytest.approx(0.0, abs=1e-12)  # perfect up to scale
    assert stress(de * 12.5, dv) == pytest.approx(stress(de, dv), rel=1e-12)  # scale invariant
    assert 0 < stress(de, dv) < 100


def test_stress_degenerate_is_nan_with_warning():
    with pytest.warns(MetricWarning, match="no pairs"):
        assert math.isnan(stress([], []))
    with pytest.warns(MetricWarning, match="sum"):
        assert math.isnan(stress([-1.0, -2.0], [1.0, 2.0]))
    with pytest.warns(MetricWarning, match="non-finite"):
        assert math.isnan(stress([1.0, np.nan], [1.0, 2.0]))


def test_f_test_against_scipy_and_verdicts():
    n = 101
    fc = f_dist.ppf(0.025, 100, 100)
    r = stress_f_test(20.0, 30.0, n)
    assert r["f"] == pytest.approx((20 / 30) ** 2)
    assert r["f_critical_low"] == pytest.approx(fc) and r["f_critical_high"] == pytest.approx(1 / fc)
    assert r["f"] < fc and r["verdict"] == "A better"
    assert stress_f_test(30.0, 20.0, n)["verdict"] == "B better"
    assert stress_f_test(30.0, 29.0, n)["verdict"] == "not significant"
    assert r["p_value"] == pytest.approx(2 * f_dist.cdf((20 / 30) ** 2, 100, 100))
    assert stress_f_test(25.0, 25.0, n)["p_value"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        stress_f_test(1.0, 2.0, 1)


def test_compare_stress_on_pairs():
    rng = np.random.default_rng(3)
    dv = rng.uniform(1, 15, 400)
    good = dv * rng.lognormal(0, 0.1, 400)
    bad = dv * rng.lognormal(0, 0.5, 400)
    r = compare_stress(good, bad, dv)
    assert r["stress_a"] < r["stress_b"] and r["verdict"] == "A better"
