"""CD-Net network: the forward pass against a numpy hand computation of the definition (Wang et al.,
TPAMI 2023), metric properties, the banded inference path, and the evaluation resizing rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cdbench.models.cdnet.network import CDNet
from cdbench.models.cdnet.preprocess import eval_resize, to_tensor, upsize_small

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(seed: int) -> CDNet:
    net = CDNet()
    net.reset_parameters(generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():  # a C with negative entries too: M must use |C|
        net.cube.sub_(0.5)
    return net.eval()


def _lrelu(z):
    return np.where(z > 0, z, 0.01 * z)


def _conv1x1(w, x):  # w (O, I, 1, 1), x (I, H, W)
    return np.einsum("oi,ihw->ohw", w[:, :, 0, 0], x)


def _conv_dilated(w, x, pad=5, dil=3):
    o, i, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    h = x.shape[1] + 2 * pad - dil * (k - 1)
    wd = x.shape[2] + 2 * pad - dil * (k - 1)
    out = np.zeros((o, h, wd))
    for ky in range(k):
        for kx in range(k):
            patch = xp[:, ky * dil:ky * dil + h, kx * dil:kx * dil + wd]
            out += np.einsum("oi,ihw->ohw", w[:, :, ky, kx], patch)
    return out


def _bilinear_align_corners(x, size):
    """Bilinear resize with align_corners=True: out[i] samples in[i * (n_in - 1) / (n_out - 1)]."""
    def axis(n_in, n_out):
        pos = np.arange(n_out) * (n_in - 1) / (n_out - 1)
        i0 = np.floor(pos).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, pos - i0
    r0, r1, fr = axis(x.shape[1], size[0])
    c0, c1, fc = axis(x.shape[2], size[1])
    rows = x[:, r0] * (1 - fr)[None, :, None] + x[:, r1] * fr[None, :, None]
    return rows[:, :, c0] * (1 - fc) + rows[:, :, c1] * fc


def _features_np(net: CDNet, img):
    w = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}
    h, wd = img.shape[1:]
    a = _conv1x1(w["conv1x1.weight"], img)
    b = _bilinear_align_corners(_conv_dilated(w["conv11x11.weight"], img), (h, wd))
    z = _lrelu(np.concatenate([a, b]))
    z = _lrelu(_conv1x1(w["conv_m1.weight"], z))
    z = _lrelu(_conv1x1(w["conv_m2.weight"], z))
    return _conv1x1(w["conv_m3.weight"], z)


def _map_np(net: CDNet, x, y):
    d = np.abs(_features_np(net, x) - _features_np(net, y))
    c = np.abs(net.cube.detach().double().numpy())
    m = (c + c.T) / 2
    return np.sqrt(1e-8 + np.einsum("ihw,ij,jhw->hw", d, m, d))


def test_forward_equals_numpy_hand_computation():
    net = _net(0)
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 26, 31))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    with torch.no_grad():
        got_map = net.cd_map(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32),
                             band_rows=None).double().numpy()
        got = net(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)).double().numpy()
    for b in range(2):
        want = _map_np(net, x[b], y[b])
        assert got_map.shape[1:] == want.shape == (26, 31)
        np.testing.assert_allclose(got_map[b], want, rtol=2e-5, atol=1e-6)
        assert got[b] == pytest.approx(want.mean(), rel=1e-5)
    # the 11x11 branch really is 11x11 with dilation 3: its raw output is 20 pixels smaller
    assert net.conv11x11(torch.zeros(1, 3, 26, 31)).shape[-2:] == (6, 11)


def test_layer_names_and_shapes_match_public_code():
    shapes = {k: tuple(v.shape) for k, v in CDNet().state_dict().items()}
    assert shapes == {"conv1x1.weight": (32, 3, 1, 1), "conv11x11.weight": (32, 3, 11, 11),
                      "conv_m1.weight": (32, 64, 1, 1), "conv_m2.weight": (16, 32, 1, 1),
                      "conv_m3.weight": (12, 16, 1, 1), "cube": (12, 12)}
    assert all(c.bias is None for c in CDNet().convs())


def test_initialisation_is_kaiming_uniform_and_cube_uniform():
    net = CDNet()
    net.reset_parameters(generator=torch.Generator().manual_seed(1))
    for conv in net.convs():
        fan_in = conv.weight[0].numel()
        bound = np.sqrt(6.0 / fan_in)  # kaiming_uniform_ with a=0: gain sqrt(2), bound gain*sqrt(3/fan_in)
        w = conv.weight.detach()
        assert w.abs().max() <= bound
        assert w.abs().max() > 0.8 * bound  # fills the range (all layers have >= 384 weights)
    assert 0 <= net.cube.min() and net.cube.max() < 1 and net.cube.std() > 0.2
    again = CDNet()
    again.reset_parameters(generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metric_properties(seed):
    """d(x, x) = sqrt(1e-8) (0 up to the stabiliser), symmetry, non-negativity, for any C."""
    net = _net(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 3, 40, 33, generator=g)
    y = torch.rand(3, 3, 40, 33, generator=g)
    with torch.no_grad():
        same = net.cd_map(x, x)
        xy, yx = net.cd_map(x, y), net.cd_map(y, x)
    torch.testing.assert_close(same, torch.full_like(same, 1e-4), rtol=1e-6, atol=0)
    torch.testing.assert_close(xy, yx, rtol=1e-6, atol=0)
    assert (xy >= 1e-4 * (1 - 1e-6)).all()
    assert (xy.mean(dim=(1, 2)) > 10 * 1e-4).all()


def test_banded_inference_equals_whole_image():
    net = _net(3)
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(2, 3, 70, 45, generator=g), torch.rand(2, 3, 70, 45, generator=g)
    with torch.no_grad():
        whole = net.cd_map(x, y, band_rows=None)
        for rows in (1, 7, 32, 69):
            torch.testing.assert_close(net.cd_map(x, y, band_rows=rows), whole, rtol=1e-6, atol=1e-7)
        cl = net.to(memory_format=torch.channels_last)
        torch.testing.assert_close(cl.cd_map(x.contiguous(memory_format=torch.channels_last),
                                             y.contiguous(memory_format=torch.channels_last)), whole,
                                   rtol=1e-5, atol=1e-6)


def test_too_small_or_mismatched_inputs_are_clear_errors():
    net = _net(0)
    with pytest.raises(ValueError, match="at least 21x21"):
        net.cd_map(torch.rand(1, 3, 20, 40), torch.rand(1, 3, 20, 40))
    with pytest.raises(ValueError, match="same shape"):
        net.cd_map(torch.rand(1, 3, 30, 40), torch.rand(1, 3, 40, 30))


# -- evaluation resizing (public code: image_loader + AdaptiveResize(1024)) ----------------------------
@pytest.mark.parametrize(("hw", "want"), [
    ((1024, 1024), (1024, 1024)),    # SPCD: unchanged
    ((1200, 1500), (1024, 1280)),    # both sides >= 1024: shorter side -> 1024, int(1024 * 1500 / 1200)
    ((1500, 1100), (1396, 1024)),    # int(1024 * 1500 / 1100) = 1396
    ((1000, 2000), (1000, 2000)),    # one side < 1024: unchanged
    ((300, 500), (384, 640)),        # a side < 384: shorter side -> 384 (bicubic)
    ((500, 200), (960, 384)),
])
def test_eval_resize_rules(hw, want):
    img = np.zeros((*hw, 3), np.uint8)
    assert eval_resize(img).shape == (*want, 3)
    assert eval_resize(img, resize=False).shape == (*hw, 3)


def test_eval_resize_pixels_match_pillow_and_float_path():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    want = np.asarray(Image.fromarray(small).resize((537, 384), Image.BICUBIC))  # int(384 * 70 / 50) = 537
    np.testing.assert_array_equal(upsize_small(small), want)
    big = rng.integers(0, 256, (1100, 1030, 3), dtype=np.uint8)
    want = np.asarray(Image.fromarray(big).resize((1024, 1093), Image.BILINEAR))  # int(1024 * 1100 / 1030)
    np.testing.assert_array_equal(eval_resize(big), want)
    # float input is resized per channel in float: on a smooth image it agrees with the uint8 path
    # to the uint8 rounding (Pillow rounds between its two passes)
    yy, xx = np.mgrid[0:50, 0:70]
    smooth = np.stack([128 + 100 * np.sin(xx / 9), 128 + 90 * np.cos(yy / 7), 60 + xx + yy], -1).astype(np.uint8)
    f = eval_resize(smooth.astype(np.float32) / 255)
    assert f.dtype == np.float32 and f.shape == (384, 537, 3)
    np.testing.assert_allclose(f, upsize_small(smooth) / 255.0, atol=1.5 / 255)
    assert eval_resize(small.astype(np.float32) / 255).min() >= 0  # bicubic overshoot clipped


def test_to_tensor_scales_uint8_like_totensor():
    img = np.array([[[0, 128, 255]]], np.uint8)
    t = to_tensor(img)
    assert t.shape == (3, 1, 1) and t.dtype == torch.float32
    torch.testing.assert_close(t.flatten(), torch.tensor([0.0, 128 / 255, 1.0]))
