"""Per-subset metrics, level-scale STRESS and the scene bootstrap."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from cdbench.data import level_value_to_score, score_to_level_value
from cdbench.metrics import (
    MetricWarning,
    bootstrap_ci,
    correlation_metrics,
    scene_groups,
    stress,
    subset_metrics,
)


def _data(n=240, n_scenes=24, seed=0):
    rng = np.random.default_rng(seed)
    human = rng.uniform(1.4, 15.4, n)
    pred = human * rng.lognormal(0, 0.3, n)
    scenes = np.array([f"I{i % n_scenes:04d}" for i in range(n)])
    aligned = rng.random(n) < 0.65
    return pred, human, scenes, aligned


def test_each_subset_equals_metrics_on_its_pairs():
    pred, human, scenes, aligned = _data()
    r = subset_metrics(pred, human, aligned, scenes, n_boot=20, seed=1)
    assert list(r) == ["all", "aligned", "not_aligned"]
    for name, m in (("all", np.ones_like(aligned)), ("aligned", aligned), ("not_aligned", ~aligned)):
        ref = correlation_metrics(pred[m], human[m])
        for k in ("n", "srcc", "krcc", "plcc", "plcc_raw", "rmse"):
            assert r[name][k] == pytest.approx(ref[k], rel=1e-12), (name, k)
        assert r[name]["stress"] == pytest.approx(stress(pred[m], human[m]), rel=1e-12)
        assert r[name]["n_scenes"] == len(set(scenes[m]))
    assert r["aligned"]["n"] + r["not_aligned"]["n"] == r["all"]["n"]


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    pred, human, scenes, aligned = _data()
    a = subset_metrics(pred, human, aligned, scenes, n_boot=60, seed=7)["all"]
    b = subset_metrics(pred, human, aligned, scenes, n_boot=60, seed=7)["all"]
    c = subset_metrics(pred, human, aligned, scenes, n_boot=60, seed=8)["all"]
    assert a["ci95"] == b["ci95"] and a["ci95"]["srcc"] != c["ci95"]["srcc"]
    assert a["ci95"]["unit"] == "scene" and a["ci95"]["n_units"] == 24
    for k in ("srcc", "krcc", "plcc", "plcc_raw", "rmse", "stress"):
        lo, hi = a["ci95"][k]
        assert lo <= a[k] <= hi, k


def test_bootstrap_resamples_whole_scenes():
    scenes = np.repeat(["a", "b", "c", "d"], [3, 5, 2, 4])
    groups = scene_groups(scenes, scenes.size)
    seen = []

    def stat(idx):
        # every drawn scene contributes all of its pairs
        counts = {s: int(np.sum(scenes[idx] == s)) for s in set(scenes[idx])}
        size = {"a": 3, "b": 5, "c": 2, "d": 4}
        seen.append(all(c % size[s] == 0 for s, c in counts.items()))
        return {"n": float(idx.size)}

    r = bootstrap_ci(stat, scenes.size, scenes, n_boot=50, seed=0)
    assert all(seen) and len(groups) == 4
    # the percentile interval, recomputed from the same seeded draws
    rng = np.random.default_rng(0)
    draws = rng.integers(0, 4, size=(50, 4))
    sizes = np.array([3, 5, 2, 4])[draws].sum(axis=1)
    assert r["n"] == [np.percentile(sizes, 2.5), np.percentile(sizes, 97.5)]


def test_single_scene_gives_nan_interval_with_a_note():
    pred, human, _, aligned = _data(n=30)
    r = subset_metrics(pred, human, aligned, ["I0249"] * 30, n_boot=50)["all"]
    assert math.isnan(r["ci95"]["srcc"][0]) and "at least 2" in r["ci95"]["note"]
    assert not math.isnan(r["srcc"])


def test_level_scale_stress_maps_back_to_scores():
    pred, human, scenes, aligned = _data()
    levels = score_to_level_value(pred)
    r = subset_metrics(levels, human, aligned, scenes, n_boot=0, scale="level")["all"]
    assert r["stress"] == pytest.approx(stress(level_value_to_score(levels), human), rel=1e-12)
    assert r["stress"] == pytest.approx(stress(pred, human), rel=1e-9)
    assert r["srcc"] == pytest.approx(correlation_metrics(pred, human)["srcc"])


def test_empty_and_tiny_subsets():
    pred, human, scenes, _ = _data(n=40)
    aligned = np.ones(40, bool)
    aligned[:2] = False
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = subset_metrics(pred, human, aligned, scenes, n_boot=10)
    assert r["not_aligned"]["n"] == 2 and math.isnan(r["not_aligned"]["srcc"])
    assert any(issubclass(x.category, MetricWarning) and "not_aligned" in str(x.message) for x in w)
    r = subset_metrics(pred, human, np.ones(40, bool), scenes, n_boot=0)
    assert r["not_aligned"]["n"] == 0 and math.isnan(r["not_aligned"]["plcc"])
