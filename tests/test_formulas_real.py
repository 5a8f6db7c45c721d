"""The formula models on the 13 real scored SPCD pairs of scene I0249 (1024x1024 photos).

The mean CIEDE2000 of each pair agrees with scikit-image's (``rgb2lab`` + ``deltaE_ciede2000``,
float64) to 1e-3 with ``convention="skimage"``, and with colour-science's constants to 1e-3 by
default; the Spearman correlation with the human scores is reported (printed and recorded in
``benchmarks/results/bench_colour.json`` by the benchmark)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import cdbench


@pytest.fixture(scope="module")
def i0249(shared_data):
    rows = [r for r in csv.DictReader(open(shared_data / "spcd" / "train_data.csv")) if "I0249" in r["image1"]]
    assert len(rows) == 13
    images = shared_data / "spcd" / "images"
    pairs = [(images / r["image1"], images / r["image2"]) for r in rows]
    return pairs, np.array([float(r["score"]) for r in rows])


def test_ciede2000_mean_matches_skimage_and_correlates_with_people(i0249):
    skcolor = pytest.importorskip("skimage.color")
    from scipy.stats import spearmanr

    from cdbench.data.images import load_image

    pairs, human = i0249
    ours_sk = cdbench.create_model("ciede2000", convention="skimage").score(pairs)
    ours = cdbench.create_model("ciede2000").score(pairs)
    lab = {p: skcolor.rgb2lab(load_image(p)) for pair in pairs for p in pair}
    ref = np.array([skcolor.deltaE_ciede2000(lab[a], lab[b]).mean() for a, b in pairs])
    np.testing.assert_allclose(ours_sk, ref, rtol=0, atol=1e-3)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=5e-3)  # other (CIE / colour-science) constants
    rho = spearmanr(ours, human).statistic
    print(f"\nI0249: Spearman(CIEDE2000 mean, human) = {rho:.4f} over {len(pairs)} pairs")
    assert np.isfinite(rho)


def test_every_formula_scores_the_real_pairs(i0249):
    from cdbench.data.images import load_image

    pairs, human = i0249
    pairs = [(load_image(a)[448:576, 448:576], load_image(b)[448:576, 448:576]) for a, b in pairs[:2]]  # crops
    for name in ("cie76", "cie94", "cmc", "cam16ucs", "itp"):
        s = cdbench.create_model(name).score(pairs)
        assert s.shape == (2,) and np.all(np.isfinite(s)) and np.all(s > 0), name
