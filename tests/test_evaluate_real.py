"""End to end on the only real scored pairs offline: the 13 scored I0249 pairs of SPCD.

CIEDE2000 through `cdbench build` + `cdbench evaluate` gives the SRCC / PLCC / STRESS that scipy
(and the CD-Net 5PL reference fit) give directly from the per-pair mean CIEDE2000 and the human
scores of train_data.csv. Skipped when ../shared/data is absent.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy.optimize import fmin
from scipy.stats import kendalltau, pearsonr, spearmanr

from cdbench.cli import main
from cdbench.data import pair_id


def _reference_5pl_plcc(x, y):
    """CD-Net's coeff_fit (transcribed): Nelder-Mead from its starting values, then Pearson."""
    def f(t, x):
        return t[0] * (0.5 - 1 / (1 + np.exp(t[1] * (x - t[2])))) + t[3] + t[4] * x

    t0 = [abs(np.max(y) - np.min(y)), 1 / np.std(x), np.mean(x), np.mean(y), -1]
    with np.errstate(over="ignore"):
        t = fmin(lambda t: np.sum((y - f(t, x)) ** 2), t0, disp=False)
    return pearsonr(f(t, x), y).statistic


def _stress(de, dv):
    f1 = np.sum(de ** 2) / np.sum(de * dv)
    return 100 * np.sqrt(np.sum((de - f1 * dv) ** 2) / (f1 ** 2 * np.sum(dv ** 2)))


@pytest.fixture(scope="module")
def real_run(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    spcd = shared_data / "spcd"
    assert main(["build", "spcd", "--root", str(spcd), "--out", str(tmp / "ds"), "--allow-missing",
                 "--no-progress"]) == 0
    assert main(["evaluate", "--model", "ciede2000", "--dataset", str(tmp / "ds"), "--split", "train",
                 "--out", str(tmp / "results"), "--n-boot", "50", "--no-progress"]) == 0
    out = tmp / "results" / "ciede2000" / "scores-train"
    human = {}
    with open(spcd / "train_data.csv", newline="") as f:
        for row in csv.DictReader(f):
            if "I0249" in row["image1"]:
                human[pair_id(row["image1"], row["image2"])] = (float(row["score"]), row["image1"], row["image2"])
    return out, human, spcd


def test_the_13_scored_pairs_are_evaluated(real_run):
    out, human, _ = real_run
    sub = json.loads((out / "submission.json").read_text())
    assert len(human) == 13
    assert sorted(p["pair_id"] for p in sub["predictions"]) == sorted(human)


def test_cli_metrics_equal_scipy_on_per_pair_means(real_run):
    out, human, _ = real_run
    sub = json.loads((out / "submission.json").read_text())
    m = json.loads((out / "metrics.json").read_text())["subsets"]["all"]
    x = np.array([p["score"] for p in sub["predictions"]])
    y = np.array([human[p["pair_id"]][0] for p in sub["predictions"]])
    assert m["n"] == 13
    # the dataset stores scores as float32: 1e-6 relative on the human scores
    assert m["srcc"] == pytest.approx(spearmanr(x, y).statistic, abs=1e-9)
    assert m["krcc"] == pytest.approx(kendalltau(x, y).statistic, abs=1e-9)
    assert m["plcc_raw"] == pytest.approx(pearsonr(x, y).statistic, abs=1e-6)
    assert m["plcc"] == pytest.approx(_reference_5pl_plcc(x, y), abs=1e-4)
    assert m["stress"] == pytest.approx(_stress(x, y), rel=1e-6)
    assert m["ci95"]["n_units"] == 1 and "at least 2" in m["ci95"]["note"]  # one scene: no bootstrap interval


def test_per_pair_means_match_an_independent_ciede2000(real_run):
    """The per-pair means themselves, against scikit-image's CIEDE2000 (its Lab constants differ
    from the CIE ones by ~0.02, hence the tolerance)."""
    pytest.importorskip("skimage")
    from skimage.color import deltaE_ciede2000, rgb2lab

    from cdbench.data.images import load_image

    out, human, spcd = real_run
    sub = json.loads((out / "submission.json").read_text())
    ours = np.array([p["score"] for p in sub["predictions"]])
    ref = []
    for p in sub["predictions"]:
        _, a, b = human[p["pair_id"]]
        la = rgb2lab(load_image(spcd / "images" / a))
        lb = rgb2lab(load_image(spcd / "images" / b))
        ref.append(float(deltaE_ciede2000(la, lb).mean()))
    ref = np.array(ref)
    y = np.array([human[p["pair_id"]][0] for p in sub["predictions"]])
    assert ours == pytest.approx(ref, rel=2e-3)
    assert spearmanr(ours, y).statistic == pytest.approx(spearmanr(ref, y).statistic, abs=1e-12)
    assert pearsonr(ours, y).statistic == pytest.approx(pearsonr(ref, y).statistic, abs=1e-3)
    assert _stress(ours, y) == pytest.approx(_stress(ref, y), abs=0.05)
