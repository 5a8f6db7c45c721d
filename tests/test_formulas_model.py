"""The formula models through the one model interface: registry, score, pooling, maps, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import cdbench
from cdbench.colour import delta_e_ciede2000, srgb_to_lab
from cdbench.errors import DataError, ModelError
from cdbench.models.formulas import FORMULA_NAMES


@pytest.fixture(autouse=True)
def _eager_single_thread(monkeypatch):
    # unit tests: no compilation, one thread (kind to a shared machine); the compiled kernel is
    # checked against the reference in benchmarks/bench_colour.py on real photos
    monkeypatch.setenv("CDBENCH_COMPILE", "0")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _images(n, size=(24, 32), seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    out = [base]
    for _ in range(n - 1):
        shift = rng.integers(-30, 30, 3)
        out.append(np.clip(base.astype(int) + shift + rng.integers(-8, 9, base.shape), 0, 255).astype(np.uint8))
    return out


def test_every_formula_is_registered_as_a_formula_model():
    names = cdbench.list_models()
    for name in ("ciede2000", "cie76", "cie94", "cmc", "cam16ucs", "itp", "s-cielab", "s-ciede2000"):
        assert name in names and name in FORMULA_NAMES
        m = cdbench.create_model(name)
        assert m.kind == "formula" and m.scale == "difference" and not m.can_describe
        info = m.info()
        assert info["name"] == name and info["settings"]["pooling"] == "mean"


def test_ciede2000_score_equals_mean_of_the_float64_reference_map(tmp_path):
    imgs = _images(3)
    paths = []
    for i, im in enumerate(imgs):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(im).save(p)
        paths.append(p)
    pairs = [(paths[0], paths[1]), (paths[1], paths[2]), (str(paths[0]), imgs[2]), (paths[2], paths[2])]
    scores = cdbench.create_model("ciede2000").score(pairs)
    assert scores.dtype == np.float64 and scores.shape == (4,)
    expect = [delta_e_ciede2000(srgb_to_lab(imgs[i].astype(np.float64) / 255),
                                srgb_to_lab(imgs[j].astype(np.float64) / 255)).mean()
              for i, j in ((0, 1), (1, 2), (0, 2))]
    np.testing.assert_allclose(scores[:3], expect, rtol=0, atol=1e-4)
    assert scores[3] == 0.0


@pytest.mark.parametrize("name", ["cie76", "cie94", "cmc", "cam16ucs", "itp"])
def test_other_formulas_fast_and_float64_paths_agree(name):
    a, b = _images(2, seed=3)
    fast = cdbench.create_model(name).score([(a, b)])
    ref = cdbench.create_model(name, dtype="float64", fast=False).score([(a, b)])
    np.testing.assert_allclose(fast, ref, rtol=1e-4)
    assert fast[0] > 0


def test_pooling_options_and_difference_map():
    a, b = _images(2, seed=5)
    m = cdbench.create_model("ciede2000", pooling="median")
    dmap = m.difference_map((a, b))
    assert dmap.shape == a.shape[:2]
    np.testing.assert_allclose(m.score([(a, b)]), [np.median(dmap)], rtol=1e-6)
    p95 = cdbench.create_model("ciede2000", pooling="p95").score([(a, b)])
    np.testing.assert_allclose(p95, [np.percentile(dmap, 95)], rtol=1e-6)
    mean = cdbench.create_model("ciede2000").score([(a, b)])
    np.testing.assert_allclose(mean, [dmap.astype(np.float64).mean()], rtol=1e-6)


def test_size_mismatch_is_a_clear_error_or_resized(tmp_path):
    a = _images(1, size=(20, 30))[0]
    b = _images(1, size=(10, 15), seed=1)[0]
    pa = tmp_path / "big.png"
    Image.fromarray(a).save(pa)
    with pytest.raises(DataError, match=r"big\.png is 30x20.*15x10"):
        cdbench.create_model("ciede2000").score([(pa, b)])
    s1 = cdbench.create_model("ciede2000", resize="first").score([(pa, b)])
    s2 = cdbench.create_model("ciede2000", resize="smaller").score([(pa, b)])
    assert np.isfinite(s1).all() and np.isfinite(s2).all()


def test_bad_options_are_model_errors():
    with pytest.raises(ModelError, match="pooling"):
        cdbench.create_model("ciede2000", pooling="max")
    with pytest.raises(ModelError, match="unknown option"):
        cdbench.create_model("ciede2000", kX=2)
    with pytest.raises(ModelError, match="resize"):
        cdbench.create_model("cie76", resize="stretch")
    with pytest.raises(DataError, match="missing.png"):
        cdbench.create_model("cie76").score([("missing.png", "missing.png")])


def test_kl_textiles_option_changes_the_score():
    a, b = _images(2, seed=7)
    s1 = cdbench.create_model("ciede2000").score([(a, b)])
    s2 = cdbench.create_model("ciede2000", kL=2.0).score([(a, b)])
    assert s2[0] < s1[0]


def test_iter_pairs_decodes_each_image_once_and_releases_it(tmp_path, monkeypatch):
    from cdbench.data import images as images_mod

    paths = []
    for i, im in enumerate(_images(6, size=(8, 8), seed=11)):
        p = tmp_path / f"s{i // 3}_{i}.png"
        Image.fromarray(im).save(p)
        paths.append(p)
    # two "scenes" of three images, every pair within a scene, interleaved in the input
    pairs = [(paths[i], paths[j]) for s in (0, 3) for i in range(s, s + 3) for j in range(i + 1, s + 3)]
    pairs = pairs[::2] + pairs[1::2]
    calls = []
    real = images_mod.load_image
    monkeypatch.setattr(images_mod, "load_image", lambda x: calls.append(str(x)) or real(x))
    seen = sorted(i for i, a, b in images_mod.iter_pairs(pairs, workers=2, prefetch=1))
    assert seen == list(range(len(pairs)))
    assert sorted(calls) == sorted(str(p) for p in paths)  # each unique image decoded exactly once
    order = images_mod.pair_schedule(pairs)
    scenes = [str(pairs[i][0]).rsplit("/", 1)[1][:2] for i in order]
    assert scenes == sorted(scenes, key=scenes.index) and len(set(scenes[:3])) == 1  # one scene at a time
    got = dict((i, (a, b)) for i, a, b in images_mod.iter_pairs(pairs, ordered=True))
    np.testing.assert_array_equal(got[0][0], real(pairs[0][0]))
    with pytest.raises(DataError, match="nope.png"):
        list(images_mod.iter_pairs([(paths[0], tmp_path / "nope.png")]))
