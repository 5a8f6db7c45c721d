"""CIEDE2000 against Sharma, Wu & Dalal (2005) Table 1 (all 34 pairs, dE00 and intermediates to 1e-4),
against colour-science on random colours (float64, relative error <= 1e-6), and its properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdbench.colour import ciede2000_terms, delta_e_ciede2000
from cdbench.colour.fused import ciede2000_planes

COLUMNS = ["pair", "L1", "a1", "b1", "ap1", "cp1", "hp1", "hbar", "G", "T", "SL", "SC", "SH", "RT", "dE00",
           "L2", "a2", "b2", "ap2", "cp2", "hp2"]


@pytest.fixture(scope="module")
def sharma(shared_data):
    rows = [line.split("\t") for line in (shared_data / "ciede2000" / "sharma2005.tsv").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    table = {c: np.array([float(r[i]) for r in rows]) for i, c in enumerate(COLUMNS)}
    assert len(rows) == 34
    return table


def _labs(t):
    return (np.stack([t["L1"], t["a1"], t["b1"]], -1), np.stack([t["L2"], t["a2"], t["b2"]], -1))


def test_sharma_2005_delta_e_all_34_pairs(sharma):
    lab1, lab2 = _labs(sharma)
    de = delta_e_ciede2000(lab1, lab2)
    assert isinstance(de, np.ndarray) and de.dtype == np.float64
    np.testing.assert_allclose(de, sharma["dE00"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(delta_e_ciede2000(lab2, lab1), sharma["dE00"], atol=1e-4, rtol=0)


def test_sharma_2005_intermediates(sharma):
    lab1, lab2 = _labs(sharma)
    t = ciede2000_terms(lab1, lab2)
    expect = {"a_p1": "ap1", "a_p2": "ap2", "C_p1": "cp1", "C_p2": "cp2", "h_p1": "hp1", "h_p2": "hp2",
              "G": "G", "T": "T", "S_L": "SL", "S_C": "SC", "S_H": "SH", "R_T": "RT"}
    # Two printed h'2 values (pairs 21 and 23) disagree by 5e-4 and 1.1e-3 degrees with h'2 computed
    # in float64 from the exact inputs (L2, a2, b2) by the few lines below (a slip of the 2005 table;
    # their dE00 agree to 1e-4): those two are checked against the recomputed value.
    def h_prime(a, b, c_bar):
        g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
        return np.degrees(np.arctan2(b, (1 + g) * a)) % 360

    c_bar = (np.hypot(sharma["a1"], sharma["b1"]) + np.hypot(sharma["a2"], sharma["b2"])) / 2
    own_h2 = h_prime(sharma["a2"], sharma["b2"], c_bar)
    slips = np.flatnonzero(np.abs(own_h2 - sharma["hp2"]) > 1e-4) + 1
    assert slips.tolist() == [21, 23]
    printed_h2 = sharma["hp2"].copy()
    printed_h2[slips - 1] = own_h2[slips - 1]
    for ours, theirs in expect.items():
        ref = printed_h2 if theirs == "hp2" else sharma[theirs]
        np.testing.assert_allclose(getattr(t, ours).numpy(), ref, atol=1e-4, rtol=0, err_msg=ours)
    # Sharma's table lists the mean hue modulo 360; for pairs 21 and 23 it carries the h'2 slip
    # (half of it: h'1 = 0 there, so h-bar' = h'2 / 2)
    printed_hbar = sharma["hbar"].copy()
    assert np.all(sharma["hp1"][slips - 1] == 0)
    printed_hbar[slips - 1] = own_h2[slips - 1] / 2
    np.testing.assert_allclose(t.h_bar_p.numpy() % 360, printed_hbar, atol=1e-4, rtol=0)


def test_sharma_2005_fused_planes_float64_and_float32(sharma):
    lab1, lab2 = _labs(sharma)
    for dtype, tol in ((torch.float64, 1e-4), (torch.float32, 2e-4)):
        p1 = [torch.tensor(lab1[:, i], dtype=dtype) for i in range(3)]
        p2 = [torch.tensor(lab2[:, i], dtype=dtype) for i in range(3)]
        np.testing.assert_allclose(ciede2000_planes(*p1, *p2).double().numpy(), sharma["dE00"], atol=tol, rtol=0)


def _random_lab(n, seed):
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(0, 100, n), rng.uniform(-128, 128, n), rng.uniform(-128, 128, n)], -1)


def test_matches_colour_science_on_random_colours():
    colour = pytest.importorskip("colour")
    lab1, lab2 = _random_lab(10_000, 1), _random_lab(10_000, 2)
    # near pairs as well: small differences are where the hue terms matter most
    lab3 = lab1 + np.random.default_rng(3).normal(0, 1.5, lab1.shape)
    for x, y in ((lab1, lab2), (lab1, lab3)):
        ours = delta_e_ciede2000(torch.from_numpy(x), torch.from_numpy(y)).numpy()
        ref = colour.difference.delta_E_CIE2000(x, y)
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-12)
        for k in (dict(kL=2.0), dict(kL=1.5, kC=0.8, kH=1.3)):
            t = colour.difference.delta_e.intermediate_attributes_CIE2000(x, y)
            kL, kC, kH = k.get("kL", 1), k.get("kC", 1), k.get("kH", 1)
            c, h = t.delta_C_p / (kC * t.S_C), t.delta_H_p / (kH * t.S_H)
            ref_k = np.sqrt((t.delta_L_p / (kL * t.S_L)) ** 2 + c**2 + h**2 + t.R_T * c * h)
            np.testing.assert_allclose(delta_e_ciede2000(x, y, **k), ref_k, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(delta_e_ciede2000(lab1, lab2, kL=2.0),
                               colour.difference.delta_E_CIE2000(lab1, lab2, textiles=True), rtol=1e-6)


def test_fused_planes_match_reference_float64():
    lab1, lab2 = _random_lab(10_000, 4), _random_lab(10_000, 5)
    lab3 = lab1 + np.random.default_rng(6).normal(0, 2.0, lab1.shape)
    for x, y in ((lab1, lab2), (lab1, lab3)):
        ref = delta_e_ciede2000(x, y)
        fast = ciede2000_planes(*torch.from_numpy(x).unbind(-1), *torch.from_numpy(y).unbind(-1)).numpy()
        np.testing.assert_allclose(fast, ref, rtol=1e-9, atol=1e-9)


def test_identity_symmetry_black_white_and_hue_wraparound():
    lab = _random_lab(2000, 7)
    other = _random_lab(2000, 8)
    assert np.all(delta_e_ciede2000(lab, lab) == 0)
    np.testing.assert_allclose(delta_e_ciede2000(lab, other), delta_e_ciede2000(other, lab), rtol=1e-12)
    black, white = np.array([0.0, 0, 0]), np.array([100.0, 0, 0])
    # neutral colours: only the lightness term, with S_L at L-bar = 50 equal to 1
    assert delta_e_ciede2000(black, white) == pytest.approx(100.0, abs=1e-12)
    assert delta_e_ciede2000(black, np.array([0.0, 0, 0])) == 0
    # hues just either side of 0/360 degrees: a small difference, continuous across the wrap
    eps_deg = np.array([0.5, 1.0, 2.0])
    a1 = np.stack([np.full(3, 50.0), 30 * np.cos(np.deg2rad(-eps_deg)), 30 * np.sin(np.deg2rad(-eps_deg))], -1)
    a2 = np.stack([np.full(3, 50.0), 30 * np.cos(np.deg2rad(eps_deg)), 30 * np.sin(np.deg2rad(eps_deg))], -1)
    across = delta_e_ciede2000(a1, a2)
    assert np.all(across < 2.0) and np.all(np.diff(across) > 0)
    t = ciede2000_terms(a1, a2)
    np.testing.assert_allclose(t.h_bar_p.numpy() % 360, 0.0, atol=1e-9)
    np.testing.assert_allclose(np.abs(t.dH_p.numpy()), 2 * 30 * np.sin(np.deg2rad(eps_deg)), rtol=1e-3)
    # the same pairs away from the wrap (hues 180 +- eps): same hue difference, mean hue 180
    b1, b2 = a1 * [1, -1, -1], a2 * [1, -1, -1]
    t2 = ciede2000_terms(b1, b2)
    np.testing.assert_allclose(t2.h_bar_p.numpy(), 180.0, atol=1e-9)
    np.testing.assert_allclose(np.abs(t2.dH_p.numpy()), np.abs(t.dH_p.numpy()), rtol=1e-9)


def test_channels_last_batch_shapes_and_dtypes():
    lab1 = torch.from_numpy(_random_lab(24, 9)).reshape(2, 3, 4, 3)
    lab2 = torch.from_numpy(_random_lab(24, 10)).reshape(2, 3, 4, 3)
    de64 = delta_e_ciede2000(lab1, lab2)
    assert de64.shape == (2, 3, 4) and de64.dtype == torch.float64
    de32 = delta_e_ciede2000(lab1.float(), lab2.float())
    assert de32.dtype == torch.float32
    np.testing.assert_allclose(de32.numpy(), de64.numpy(), rtol=1e-4, atol=1e-4)
    assert delta_e_ciede2000(lab1.float(), lab2.float(), dtype=torch.float64).dtype == torch.float64
