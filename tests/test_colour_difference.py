"""CIE76, CIE94, CMC, CAM16-UCS and ITP differences against colour-science (float64, 10,000 random
pairs, relative error <= 1e-6), with identity, symmetry and asymmetry properties; pooling vs numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdbench.colour import (
    delta_e_cam16ucs,
    delta_e_cie76,
    delta_e_cie94,
    delta_e_cmc,
    delta_e_itp,
    get_pooling,
    srgb_to_cam16ucs,
    srgb_to_ictcp,
)
from cdbench.errors import DataError

colour = pytest.importorskip("colour")
N = 10_000


def _labs(seed):
    rng = np.random.default_rng(seed)
    lab1 = np.stack([rng.uniform(0, 100, N), rng.uniform(-110, 110, N), rng.uniform(-110, 110, N)], -1)
    lab2 = lab1 + rng.normal(0, 4, lab1.shape)
    lab2[: N // 2] = np.stack([rng.uniform(0, 100, N // 2), rng.uniform(-110, 110, N // 2),
                               rng.uniform(-110, 110, N // 2)], -1)
    lab1[:3] = [[0, 0, 0], [100, 0, 0], [10, 0, 0]]  # black, white, a dark neutral (CMC's L < 16 branch)
    return lab1, lab2


@pytest.mark.parametrize("ours, theirs, kwargs", [
    (delta_e_cie76, "delta_E_CIE1976", {}),
    (delta_e_cie94, "delta_E_CIE1994", {}),
    (delta_e_cie94, "delta_E_CIE1994", {"textiles": True}),
    (delta_e_cmc, "delta_E_CMC", {}),
    (delta_e_cmc, "delta_E_CMC", {"l": 1, "c": 1}),
])
def test_lab_formulas_match_colour_science(ours, theirs, kwargs):
    lab1, lab2 = _labs(1)
    ref = getattr(colour.difference, theirs)(lab1, lab2, **kwargs)
    got = ours(lab1, lab2, **kwargs)
    assert got.dtype == np.float64 and got.shape == (N,)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(ours(torch.from_numpy(lab1), torch.from_numpy(lab2), **kwargs).numpy(), ref,
                               rtol=1e-6, atol=1e-12)
    assert np.all(ours(lab1, lab1, **kwargs) == 0)


def test_cie94_and_cmc_are_asymmetric_cie76_symmetric():
    lab1, lab2 = _labs(2)
    np.testing.assert_allclose(delta_e_cie76(lab1, lab2), delta_e_cie76(lab2, lab1), rtol=1e-15)
    for f in (delta_e_cie94, delta_e_cmc):
        assert not np.allclose(f(lab1, lab2), f(lab2, lab1))  # the first colour is the reference


def test_cam16ucs_and_itp_differences_match_colour_science():
    rng = np.random.default_rng(3)
    rgb1 = rng.uniform(0, 1, (N, 3))
    rgb2 = np.clip(rgb1 + rng.normal(0, 0.05, rgb1.shape), 0, 1)
    j1, j2 = colour.XYZ_to_CAM16UCS(colour.sRGB_to_XYZ(rgb1)), colour.XYZ_to_CAM16UCS(colour.sRGB_to_XYZ(rgb2))
    np.testing.assert_allclose(delta_e_cam16ucs(srgb_to_cam16ucs(rgb1), srgb_to_cam16ucs(rgb2)),
                               colour.difference.delta_E_CAM16UCS(j1, j2), rtol=1e-6, atol=1e-9)
    to2020 = colour.RGB_COLOURSPACES["sRGB"], colour.RGB_COLOURSPACES["ITU-R BT.2020"]

    def ictcp(rgb):
        lin = colour.RGB_to_RGB(colour.models.eotf_sRGB(rgb), *to2020, chromatic_adaptation_transform=None)
        return colour.RGB_to_ICtCp(lin * 100, method="ITU-R BT.2100-2 PQ")

    np.testing.assert_allclose(delta_e_itp(srgb_to_ictcp(rgb1), srgb_to_ictcp(rgb2)),
                               colour.difference.delta_E_ITP(ictcp(rgb1), ictcp(rgb2)), rtol=1e-6, atol=1e-9)
    d = delta_e_itp(srgb_to_ictcp(rgb1), srgb_to_ictcp(rgb2))
    np.testing.assert_allclose(d, delta_e_itp(srgb_to_ictcp(rgb2), srgb_to_ictcp(rgb1)), rtol=1e-12)


def test_pooling_matches_numpy():
    x = torch.from_numpy(np.random.default_rng(4).gamma(2.0, 2.0, (37, 41)).astype(np.float32))
    arr = x.numpy().astype(np.float64)
    assert get_pooling("mean")(x) == pytest.approx(arr.mean(), rel=1e-12)
    assert get_pooling("median")(x) == pytest.approx(np.median(arr), rel=1e-12)
    assert get_pooling("p95")(x) == pytest.approx(np.percentile(arr, 95), rel=1e-12)
    assert get_pooling("p99.5")(x) == pytest.approx(np.percentile(arr, 99.5), rel=1e-12)
    assert get_pooling("median")(torch.tensor([1.0, 2.0, 3.0, 10.0])) == 2.5
    with pytest.raises(DataError, match="unknown pooling"):
        get_pooling("max")
