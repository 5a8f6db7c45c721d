"""CD-Net as a cdbench model: score/cd_map share one forward, inputs of every kind, batching of mixed
sizes, clear errors, and ``cdbench cdmap`` writing a heat-map PNG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import cdbench
from cdbench.cli import main
from cdbench.errors import DataError
from cdbench.models.cdnet.checkpoint import save_cdnet
from cdbench.models.cdnet.network import CDNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def weights(tmp_path):
    net = CDNet()
    net.reset_parameters(generator=torch.Generator().manual_seed(0))
    return save_cdnet(net, tmp_path / "cdnet")


def _img(seed, h=48, w=56):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_score_is_mean_of_cd_map_and_matches_the_network(weights):
    model = cdbench.create_model(weights, device="cpu", resize=False, batch_size=2)
    assert model.name == "cdnet" and model.kind == "learned" and model.scale == "difference"
    pairs = [(_img(i), _img(i + 10)) for i in range(5)]
    s = model.score(pairs)
    assert s.dtype == np.float64 and s.shape == (5,)
    for p, si in zip(pairs, s):
        m = model.cd_map(p)
        assert m.shape == (48, 56) and m.dtype == np.float32
        assert si == pytest.approx(m.astype(np.float64).mean(), rel=1e-12)
    net = model.network
    with torch.no_grad():
        x = torch.from_numpy(pairs[0][0]).permute(2, 0, 1)[None].float() / 255
        y = torch.from_numpy(pairs[0][1]).permute(2, 0, 1)[None].float() / 255
        assert s[0] == pytest.approx(net.cpu()(x.contiguous(), y.contiguous()).item(), rel=1e-5)
    # batch size does not change the numbers
    one = cdbench.create_model(weights, device="cpu", resize=False, batch_size=1)
    np.testing.assert_allclose(one.score(pairs), s, rtol=1e-6)


def test_inputs_of_every_kind_and_mixed_sizes(weights, tmp_path):
    a, b = _img(1, 40, 64), _img(2, 40, 64)
    c, d = _img(3, 30, 30), _img(4, 30, 30)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    model = cdbench.create_model("cdnet", weights=weights, device="cpu", resize=False, batch_size=4)
    pairs = [(a, b), (c, d), (str(tmp_path / "a.png"), tmp_path / "b.png"), (Image.fromarray(a), b),
             (torch.from_numpy(a.astype(np.float32) / 255), b.astype(np.float32) / 255), (d, c)]
    s = model.score(pairs, progress=False)
    assert s[0] == s[2] == pytest.approx(s[3])
    assert s[4] == pytest.approx(s[0], rel=1e-6)
    assert s[1] == pytest.approx(s[5], rel=1e-6)  # symmetric
    assert len(set(np.round(s, 9))) == 2


def test_evaluation_resizing_is_applied(weights):
    small = (_img(5, 100, 120), _img(6, 100, 120))
    resized = cdbench.create_model(weights, device="cpu")
    assert resized.cd_map(small).shape == (384, 460)  # int(384 * 120 / 100)
    assert cdbench.create_model(weights, device="cpu", resize=False).cd_map(small).shape == (100, 120)
    assert resized.info()["settings"]["resize"] is True


def test_clear_errors(weights):
    model = cdbench.create_model(weights, device="cpu", resize=False)
    with pytest.raises(DataError, match=r"pair 1: .*differ in size.*56x48 and 48x56"):
        model.score([(_img(0), _img(1)), (_img(0), _img(1, 56, 48))])
    with pytest.raises(DataError, match="too small"):
        model.score([(_img(0, 10, 10), _img(1, 10, 10))])
    with pytest.raises(DataError, match="missing.png: image file not found"):
        model.score([("missing.png", "missing.png")])
    with pytest.raises(cdbench.errors.ModelError, match="fp16 needs a CUDA"):
        cdbench.create_model(weights, device="cpu", precision="fp16")
    assert model.score([]).shape == (0,)


def test_out_of_memory_halves_the_batch_then_uses_bands(weights, monkeypatch):
    model = cdbench.create_model(weights, device="cpu", resize=False, batch_size=8, band_rows=None)
    pairs = [(_img(i, 40, 40), _img(i + 1, 40, 40)) for i in range(7)]
    want = model.score(pairs)
    real = type(model)._forward
    seen = []

    def tight(self, batch):  # "GPU memory" for 2 pairs at most, and only in bands
        seen.append((len(batch), self.band_rows))
        if len(batch) > 2 or self.band_rows is None:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, batch)

    monkeypatch.setattr(type(model), "_forward", tight)
    np.testing.assert_allclose(model.score(pairs), want, rtol=1e-6)
    assert model.band_rows == 64 and model.batch_size == 1
    assert seen[0] == (7, None) and (1, 64) in seen


def test_bf16_autocast_on_cpu_is_close(weights):
    pairs = [(_img(7, 64, 64), _img(8, 64, 64))]
    fp32 = cdbench.create_model(weights, device="cpu", resize=False).score(pairs)
    bf16 = cdbench.create_model(weights, device="cpu", resize=False, precision="bf16").score(pairs)
    assert bf16[0] == pytest.approx(fp32[0], rel=0.03)


def test_cdmap_cli_writes_heatmap_png(weights, tmp_path, capsys):
    a, b = _img(1, 60, 80), _img(2, 60, 80)
    b[:, 40:] = a[:, 40:]  # right half identical: its map is the stabiliser floor
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    out = tmp_path / "map.png"
    rc = main(["cdmap", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--weights", str(weights),
               "--out", str(out), "--no-resize", "--device", "cpu", "--raw", str(tmp_path / "map.npy")])
    assert rc == 0 and "CD-Net score" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 3 * im.height / 2  # inputs and map side by side
    raw = np.load(tmp_path / "map.npy")
    assert raw.shape == (60, 80)
    # far enough from the differing half for the 31-pixel dilated context (shifted by its resize)
    assert raw[:, 72:].max() == pytest.approx(1e-4, rel=1e-5)
    assert raw[:, :30].mean() > 100 * 1e-4
    only = tmp_path / "only.png"
    assert main(["cdmap", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--weights", str(weights),
                 "--out", str(only), "--no-resize", "--map-only", "--device", "cpu"]) == 0
    with Image.open(only) as im:
        assert im.size == (80, 60) and im.mode == "RGB"
        px = np.asarray(im)
    assert px[:, :30].astype(int).sum() > px[:, 50:].astype(int).sum()  # hotter where the images differ
    assert main(["cdmap", str(tmp_path / "a.png"), str(tmp_path / "nope.png"), "--weights", str(weights),
                 "--out", str(tmp_path / "x.png")]) == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_scores_match_cpu_and_half_precision_is_close(weights, tmp_path):
    pairs = [(_img(i, 64, 72), _img(i + 1, 64, 72)) for i in range(6)]
    cpu = cdbench.create_model(weights, device="cpu", resize=False).score(pairs)
    gpu = cdbench.create_model(weights, device="cuda", resize=False, batch_size=4).score(pairs)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4)
    for precision in ("bf16", "fp16"):
        half = cdbench.create_model(weights, device="cuda", resize=False, precision=precision).score(pairs)
        np.testing.assert_allclose(half, cpu, rtol=0.03)
    from cdbench.models.cdnet.train import TrainConfig, TrainData, train_cdnet

    data = TrainData(pairs, np.arange(6, dtype=float))
    for amp in ("none", "bf16", "fp16"):
        res = train_cdnet(data, data, tmp_path / amp, TrainConfig(epochs=1, batch_size=3, crop=32, resize=False,
                                                                 amp=amp, device="cuda", progress=False))
        assert np.isfinite(res.history[0]["train_loss"])
