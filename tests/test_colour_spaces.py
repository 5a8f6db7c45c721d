"""Colour spaces against colour-science (float64, >= 10,000 random colours, relative error <= 1e-6)
and scikit-image; uint8 lookup table, batch shapes, dtypes, out-of-gamut input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdbench.colour import (
    CAM16ViewingConditions,
    lab_to_lch,
    srgb_decode,
    srgb_to_cam16ucs,
    srgb_to_ictcp,
    srgb_to_lab,
    srgb_to_xyz,
    xyz_to_cam16ucs,
    xyz_to_lab,
)
from cdbench.colour.conventions import CIE
from cdbench.colour.ictcp import normalised_primary_matrix, srgb_to_bt2020_matrix
from cdbench.errors import DataError

colour = pytest.importorskip("colour")
N = 10_000


def _rel(ours, ref, floor=1e-9):
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), floor))


@pytest.fixture(scope="module")
def rgb():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (N, 3))
    x[:8] = [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.04045, 0.0031308, 0.5], [0.5, 0.5, 0.5],
             [1e-4, 2e-3, 0.03]]  # black, white, primaries, near the decode / CIELAB thresholds
    return x


def test_srgb_to_xyz_and_lab_match_colour_science(rgb):
    xyz_ref = colour.sRGB_to_XYZ(rgb)
    xyz = srgb_to_xyz(rgb)
    assert isinstance(xyz, np.ndarray) and xyz.dtype == np.float64
    np.testing.assert_allclose(xyz, xyz_ref, rtol=1e-6, atol=1e-12)
    lab_ref = colour.XYZ_to_Lab(xyz_ref)
    np.testing.assert_allclose(xyz_to_lab(xyz_ref), lab_ref, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(srgb_to_lab(rgb), lab_ref, rtol=1e-6, atol=1e-9)
    # black exactly; the sRGB white has L* = 100 and, because the IEC matrix is rounded to four
    # decimals while the D65 white comes from its chromaticity, a* = 0.0077, b* = 0.0035 (as in colour-science)
    white = srgb_to_lab(np.array([1.0, 1, 1]))
    assert white[0] == pytest.approx(100.0, abs=1e-9) and 0 < white[1] < 0.01 and 0 < white[2] < 0.01
    np.testing.assert_allclose(srgb_to_lab(np.array([1.0, 1, 1]), convention="skimage"), [100, 0, 0], atol=1e-2)
    np.testing.assert_allclose(srgb_to_lab(np.array([0.0, 0, 0])), [0, 0, 0], atol=1e-12)


def test_srgb_to_lab_matches_skimage_with_its_convention(rgb):
    skcolor = pytest.importorskip("skimage.color")
    ref = skcolor.rgb2lab(rgb.reshape(100, 100, 3)).reshape(-1, 3)
    np.testing.assert_allclose(srgb_to_lab(rgb, convention="skimage"), ref, rtol=1e-6, atol=1e-9)
    # the default (CIE / colour-science) constants differ from skimage's by at most ~0.02 in a*
    diff = np.abs(srgb_to_lab(rgb) - ref).max(axis=0)
    assert 1e-4 < diff.max() < 0.05


def test_uint8_lookup_table_equals_the_float_path():
    codes = np.arange(256, dtype=np.uint8)
    grid = np.stack(np.meshgrid(codes, codes[::5], codes[::7], indexing="ij"), -1).reshape(-1, 3)
    lab_u8 = srgb_to_lab(torch.from_numpy(grid), dtype=torch.float64)
    lab_f = srgb_to_lab(torch.from_numpy(grid / 255.0))
    np.testing.assert_allclose(lab_u8.numpy(), lab_f.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(srgb_decode(codes, dtype=torch.float64), colour.models.eotf_sRGB(codes / 255.0),
                               rtol=1e-12, atol=1e-15)
    assert srgb_to_lab(torch.from_numpy(grid)).dtype == torch.float32


def test_cam16ucs_matches_colour_science(rgb):
    xyz = colour.sRGB_to_XYZ(rgb)
    ref = colour.XYZ_to_CAM16UCS(xyz)
    np.testing.assert_allclose(xyz_to_cam16ucs(xyz), ref, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(srgb_to_cam16ucs(rgb), ref, rtol=1e-6, atol=1e-9)
    # other viewing conditions are honoured the same way
    vc = CAM16ViewingConditions(L_A=318.31, Y_b=20.0, surround="dim")
    ref_dim = colour.XYZ_to_CAM16UCS(xyz, L_A=318.31, Y_b=20.0, surround=colour.VIEWING_CONDITIONS_CAM16["Dim"])
    np.testing.assert_allclose(xyz_to_cam16ucs(xyz, viewing=vc), ref_dim, rtol=1e-6, atol=1e-9)


def test_ictcp_matches_colour_science(rgb):
    assert np.allclose(normalised_primary_matrix(((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)), (0.3127, 0.3290)),
                       CIE.rgb_to_xyz, atol=1e-4)  # the sRGB primaries give the IEC matrix
    lin2020 = colour.RGB_to_RGB(colour.models.eotf_sRGB(rgb), colour.RGB_COLOURSPACES["sRGB"],
                                colour.RGB_COLOURSPACES["ITU-R BT.2020"], chromatic_adaptation_transform=None)
    np.testing.assert_allclose(colour.models.eotf_sRGB(rgb) @ srgb_to_bt2020_matrix().T, lin2020, rtol=1e-6,
                               atol=1e-10)
    for white in (100.0, 203.0):
        ref = colour.RGB_to_ICtCp(lin2020 * white, method="ITU-R BT.2100-2 PQ")
        np.testing.assert_allclose(srgb_to_ictcp(rgb, white_luminance=white), ref, rtol=1e-6, atol=1e-9)


def test_out_of_gamut_input_follows_colour_science():
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.2, 1.3, (2000, 3))
    np.testing.assert_allclose(srgb_to_xyz(x), colour.sRGB_to_XYZ(x), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(srgb_to_lab(x), colour.XYZ_to_Lab(colour.sRGB_to_XYZ(x)), rtol=1e-6, atol=1e-9)
    ref = colour.XYZ_to_CAM16UCS(colour.sRGB_to_XYZ(x))
    ours = srgb_to_cam16ucs(x)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))  # both undefined for the same colours
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-6, atol=1e-9)
    assert np.isfinite(srgb_to_ictcp(np.clip(x, 0, None))).all()


def test_batch_shapes_devices_dtypes_and_errors():
    x = torch.rand(2, 5, 7, 3, dtype=torch.float64)
    lab = srgb_to_lab(x)
    assert lab.shape == (2, 5, 7, 3) and lab.dtype == torch.float64
    assert srgb_to_lab(x.float()).dtype == torch.float32
    assert srgb_to_lab(x.float(), dtype=torch.float64).dtype == torch.float64
    lch = lab_to_lch(lab)
    np.testing.assert_allclose(lch[..., 1].numpy(), np.hypot(lab[..., 1].numpy(), lab[..., 2].numpy()), rtol=1e-12)
    assert ((lch[..., 2] >= 0) & (lch[..., 2] < 360)).all()
    with pytest.raises(DataError, match="3 channels"):
        srgb_to_lab(np.zeros((4, 4)))
    with pytest.raises(DataError, match="unknown colour convention"):
        srgb_to_lab(np.zeros((1, 3)), convention="adobe")


@pytest.mark.gpu
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x = torch.rand(1000, 3, dtype=torch.float64)
    np.testing.assert_allclose(srgb_to_lab(x.cuda()).cpu().numpy(), srgb_to_lab(x).numpy(), rtol=1e-10)
