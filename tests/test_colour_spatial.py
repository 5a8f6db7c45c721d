"""S-CIELAB / S-CIEDE2000: the Zhang & Wandell filters, the separable convolution against scipy,
and the behaviour that defines the measure (the eye blurs fine patterns, not uniform areas)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cdbench.colour import delta_e_cie76, delta_e_ciede2000, srgb_to_lab
from cdbench.colour.spatial import (
    FILTER_PARAMETERS,
    _gauss,
    filter_opponent,
    separable_kernels,
    spatial_difference_map,
)
from cdbench.errors import DataError


def test_gauss_has_the_stated_half_width_and_unit_sum():
    g = _gauss(9.0, 41)  # FWHM of 9 samples: half maximum 4 samples either side of the centre
    assert g.sum() == pytest.approx(1.0, abs=1e-12)
    c = 20
    assert g[c + 4] / g[c] == pytest.approx(0.5, rel=1e-12) and g[c - 4] == pytest.approx(g[c + 4], rel=1e-12)


@pytest.mark.parametrize("ppd", [23.0, 41.0, 250.0])
def test_kernels_are_odd_symmetric_and_preserve_the_mean(ppd):
    kernels = separable_kernels(ppd)
    assert len(kernels) == 3 and [len(k) for k in kernels] == [len(p) for p in FILTER_PARAMETERS]
    for ks, params in zip(kernels, FILTER_PARAMETERS):
        total = 0.0
        for k in ks:
            assert len(k) % 2 == 1 and np.allclose(k, k[::-1])
            total += np.sign(k.sum()) * np.abs(k).sum() * np.abs(k).sum()  # the 2-D kernel's sum
        assert total == pytest.approx(sum(w for _, w in params), abs=0.02)  # weights sum to 1
    if ppd >= 224:
        assert len(kernels[0][0]) == math.ceil(ppd / 2) * 2 - 1


def test_separable_filtering_matches_scipy_with_reflected_edges():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    opp = rng.normal(0, 1, (70, 90, 3))
    ours = filter_opponent(torch.from_numpy(opp), 23.0).numpy()
    for c, ks in enumerate(separable_kernels(23.0)):
        ref = sum(ndimage.convolve1d(ndimage.convolve1d(opp[..., c], k, axis=1, mode="reflect"), np.abs(k), axis=0,
                                     mode="reflect") for k in ks)
        np.testing.assert_allclose(ours[..., c], ref, rtol=1e-9, atol=1e-12)


def test_uniform_images_give_the_plain_cielab_difference():
    # larger than the kernels (41 taps at the default 41 pixels per degree): the filters preserve the mean
    a = np.full((64, 72, 3), (200, 40, 90), dtype=np.uint8)
    b = np.full((64, 72, 3), (190, 60, 80), dtype=np.uint8)
    la, lb = srgb_to_lab(a[:1, :1].astype(np.float64) / 255), srgb_to_lab(b[:1, :1].astype(np.float64) / 255)
    de76, de00 = float(delta_e_cie76(la, lb)[0, 0]), float(delta_e_ciede2000(la, lb)[0, 0])
    # at >= 224 samples per degree the kernels are plain sums of unit-sum Gaussians: exact
    big_a, big_b = np.resize(a, (256, 256, 3)), np.resize(b, (256, 256, 3))  # larger than the 249 taps
    m = spatial_difference_map(big_a, big_b, "s-cielab", pixels_per_degree=250.0, dtype=torch.float64).numpy()
    np.testing.assert_allclose(m, de76, rtol=1e-6)
    # below, the reference code's upsample-smooth-decimate step changes the kernel sums by up to
    # 0.2% (its renormalisation is commented out in separableFilters.m; kept as published)
    m = spatial_difference_map(a, b, "s-cielab", dtype=torch.float64).numpy()
    np.testing.assert_allclose(m, de76, rtol=5e-3)
    m2 = spatial_difference_map(a, b, "s-ciede2000", dtype=torch.float64).numpy()
    np.testing.assert_allclose(m2, de00, rtol=5e-3)


def test_fine_patterns_are_blurred_by_the_eye():
    # a one-pixel red/green checkerboard against its mean colour: large per-pixel CIELAB
    # difference, small S-CIELAB difference at normal viewing (the eye cannot resolve it)
    yy, xx = np.mgrid[:48, :48]
    checker = np.where(((yy + xx) % 2 == 0)[..., None], [200, 30, 30], [30, 200, 30]).astype(np.uint8)
    lin = (checker.astype(np.float64) / 255)
    mean_lin = np.where(lin <= 0.04045, lin / 12.92, ((lin + 0.055) / 1.055) ** 2.4).mean(axis=(0, 1))
    mean_srgb = np.where(mean_lin <= 0.0031308, 12.92 * mean_lin, 1.055 * mean_lin ** (1 / 2.4) - 0.055)
    flat = np.broadcast_to(np.round(mean_srgb * 255), checker.shape).astype(np.uint8)
    plain = delta_e_cie76(srgb_to_lab(checker, dtype=torch.float64), srgb_to_lab(flat, dtype=torch.float64)).mean()
    spatial = spatial_difference_map(checker, flat, "s-cielab", dtype=torch.float64)[8:-8, 8:-8].mean()
    assert plain > 40 and spatial < 5
    # viewed from very close (few pixels per degree) the pattern becomes visible again
    close = spatial_difference_map(checker, flat, "s-cielab", pixels_per_degree=4.0,
                                   dtype=torch.float64)[8:-8, 8:-8].mean()
    assert close > 2 * spatial


def test_options_and_errors():
    a = np.zeros((8, 8, 3), dtype=np.uint8)
    b = np.full((8, 8, 3), 50, dtype=np.uint8)
    d1 = spatial_difference_map(a, b, "s-ciede2000").mean()
    d2 = spatial_difference_map(a, b, "s-ciede2000", kL=2.0).mean()
    assert d2 < d1
    with pytest.raises(DataError, match="unknown option"):
        spatial_difference_map(a, b, "s-cielab", kL=2.0)
    with pytest.raises(DataError, match="differ in size"):
        spatial_difference_map(a, b[:4], "s-cielab")
    with pytest.raises(DataError, match="positive"):
        spatial_difference_map(a, b, "s-cielab", pixels_per_degree=0)


def test_spatial_models_filter_each_image_once_and_match_the_map():
    import cdbench

    rng = np.random.default_rng(3)
    imgs = [rng.integers(0, 256, (40, 52, 3), dtype=np.uint8) for _ in range(3)]
    pairs = [(imgs[0], imgs[1]), (imgs[1], imgs[2]), (imgs[0], imgs[2])]
    for name, kw in (("s-cielab", {}), ("s-ciede2000", {"kL": 2.0})):
        got = cdbench.create_model(name, pixels_per_degree=30.0, **kw).score(pairs)
        ref = [float(spatial_difference_map(a, b, name, pixels_per_degree=30.0, dtype=torch.float64, **kw).mean())
               for a, b in pairs]
        np.testing.assert_allclose(got, ref, rtol=1e-4)
