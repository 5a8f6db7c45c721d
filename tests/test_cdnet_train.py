"""CD-Net training: it learns a known colour-shift magnitude (SRCC > 0.9 on held-out pairs), the
paired augmentation is one transform for both images, resuming equals an uninterrupted run, and
``cdbench train cdnet`` runs end to end on a built synthetic SPCD folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import cdbench
from cdbench.cli import main
from cdbench.errors import DataError, ModelError
from cdbench.metrics import srcc
from cdbench.models.cdnet.checkpoint import load_cdnet
from cdbench.models.cdnet.model import CDNetModel
from cdbench.models.cdnet.network import CDNet
from cdbench.models.cdnet.train import (
    STATE_NAME,
    Augment,
    TrainConfig,
    TrainData,
    _generator,
    augment_pair,
    train_cdnet,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def luminance_shift_pairs(n: int, seed: int, size: int = 24) -> TrainData:
    """Blocky colour images and a copy shifted by a grey offset ``l`` plus a chroma offset; the target
    is ``10 |l|``: the chroma part must be learned to be ignored (a random CD-Net does not)."""
    rng = np.random.default_rng(seed)
    pairs, scores = [], []
    for _ in range(n):
        img = np.kron(rng.uniform(0.25, 0.75, (3, 3, 3)), np.ones((size // 3, size // 3, 1))).astype(np.float32)
        lum = rng.uniform(-0.2, 0.2)
        chroma = rng.normal(size=3)
        chroma -= chroma.mean()
        chroma *= rng.uniform(0, 0.2) / np.linalg.norm(chroma)
        pairs.append((img, np.clip(img + lum + chroma, 0, 1).astype(np.float32)))
        scores.append(10 * abs(lum))
    return TrainData(pairs, np.array(scores))


def _quick(**kw) -> TrainConfig:
    base = dict(epochs=4, batch_size=8, crop=24, lr=1e-2, milestones=(3,), ema_decay=0.9, rotation=0.0,
                resize=False, seed=0, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_training_learns_a_known_colour_shift_magnitude(tmp_path):
    train, val = luminance_shift_pairs(48, 0), luminance_shift_pairs(24, 1)
    cfg = _quick()
    init = CDNet()
    init.reset_parameters(generator=_generator(cfg.seed, -1))
    before = srcc(CDNetModel(init, device="cpu", resize=False).score(val.pairs), val.scores)
    res = train_cdnet(train, val, tmp_path / "run", cfg)
    losses = [h["train_loss"] for h in res.history]
    assert len(losses) == 4 and losses[-1] < 0.2 * losses[0]
    assert [h["lr"] for h in res.history] == [1e-2, 1e-2, 1e-2, 5e-3]  # multi-step decay at epoch 3
    assert res.best_srcc > 0.9 and res.best_srcc > before + 0.05
    model = cdbench.create_model(tmp_path / "run", device="cpu", resize=False)
    assert srcc(model.score(val.pairs), val.scores) == pytest.approx(res.best_srcc, abs=1e-12)
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert hist["best"]["epoch"] == res.best_epoch and len(hist["epochs"]) == 4
    run = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert run["settings"]["lr"] == 1e-2 and "torch" in run["versions"]


def test_resume_equals_uninterrupted_run(tmp_path):
    train = luminance_shift_pairs(12, 2, size=30)
    val = luminance_shift_pairs(6, 3, size=30)
    cfg = _quick(epochs=3, batch_size=4, crop=21, rotation=3.0, milestones=(1, 2))  # every augmentation on
    whole = train_cdnet(train, val, tmp_path / "whole", cfg)
    part = train_cdnet(train, val, tmp_path / "part", cfg, stop_after=1)
    assert len(part.history) == 1
    resumed = train_cdnet(train, val, tmp_path / "part", cfg)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    for k, v in whole.network.state_dict().items():
        assert torch.equal(resumed.network.state_dict()[k], v), k
    a = torch.load(tmp_path / "whole" / STATE_NAME, weights_only=True)
    b = torch.load(tmp_path / "part" / STATE_NAME, weights_only=True)
    for k in a["ema"]:
        assert torch.equal(a["ema"][k], b["ema"][k])
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert (tmp_path / "whole" / "model.safetensors").read_bytes() == \
        (tmp_path / "part" / "model.safetensors").read_bytes()
    # a finished run is not trained again; more epochs continue it
    again = train_cdnet(train, val, tmp_path / "part", cfg)
    assert len(again.history) == 3
    # a folder holding a model but no training state is not overwritten silently
    (tmp_path / "whole" / STATE_NAME).unlink()
    with pytest.raises(ModelError, match="no train_state.pt to resume"):
        train_cdnet(train, val, tmp_path / "whole", cfg)
    # other settings cannot silently resume
    with pytest.raises(ModelError, match="other settings.*lr"):
        train_cdnet(train, val, tmp_path / "part", _quick(epochs=4, batch_size=4, crop=21, rotation=3.0,
                                                           milestones=(1, 2), lr=1e-3))


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    train = luminance_shift_pairs(8, 4)
    runs = [train_cdnet(train, None, tmp_path / f"r{i}", _quick(epochs=1, seed=s)).network
            for i, s in enumerate((5, 5, 6))]
    assert torch.equal(runs[0].cube, runs[1].cube) and torch.equal(runs[0].conv_m1.weight, runs[1].conv_m1.weight)
    assert not torch.equal(runs[0].cube, runs[2].cube)


def test_augmentation_is_one_transform_for_both_images():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    # flips then crop, no rotation: numpy's flips of the same window
    x, y = augment_pair(a, a, 30, Augment(angle=0, hflip=True, vflip=True, invert=False, top=0.0, left=0.99))
    assert torch.equal(x, y)
    want = a[::-1, ::-1][0:30, 10:40]
    np.testing.assert_array_equal((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), want)
    # the slicing fast path (no rotation) equals the general index path, for every flip and offset
    from cdbench.models.cdnet.train import crop_indices, crop_pair

    r = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)
    for hf in (False, True):
        for vf in (False, True):
            for top, left in ((0.0, 0.0), (0.5, 0.3), (0.999, 0.999)):
                aug = Augment(angle=0, hflip=hf, vflip=vf, invert=False, top=top, left=left)
                flat, valid = crop_indices(37, 45, 30, aug)
                ca, cb, v = crop_pair(r, r, 30, aug)
                assert valid.all() and v is None
                np.testing.assert_array_equal(ca, r.reshape(-1, 3)[flat])
    # a 90 degree rotation of a square image is numpy's counter-clockwise rot90; inversion is 1 - x
    x, _ = augment_pair(a, a, 40, Augment(angle=90, hflip=False, vflip=False, invert=True, top=0, left=0))
    np.testing.assert_allclose(1 - x.permute(1, 2, 0).numpy(), np.rot90(a) / 255.0, atol=1e-6)
    # a small rotation leaves zero-filled corners, the same in both images
    b = np.full((40, 40, 3), 200, np.uint8)
    x, y = augment_pair(b, a, 40, Augment(angle=3, hflip=False, vflip=False, invert=False, top=0, left=0))
    assert x[0, 0, 0] == 0 and x[0, 20, 20] > 0
    assert (y[x == 0] == 0).all()


def test_bad_training_input_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not a finite number"):
        TrainData([(np.zeros((30, 30, 3)), np.zeros((30, 30, 3)))], [float("nan")])
    bad = TrainData([(np.zeros((30, 30, 3), np.float32), np.zeros((30, 32, 3), np.float32))], [1.0])
    with pytest.raises(DataError, match="training pair 0: the two images differ in size"):
        train_cdnet(bad, None, tmp_path / "bad", _quick(epochs=1))
    with pytest.raises(ModelError, match="crop must be"):
        TrainConfig(crop=8)


def test_cli_trains_on_a_built_synthetic_spcd_folder(tmp_path, capsys):
    from cdbench.data.synthetic import make_synthetic_spcd

    root = make_synthetic_spcd(tmp_path / "raw", n_scenes=3, size=32)
    assert main(["build", "spcd", "--root", str(root), "--out", str(tmp_path / "spcd")]) == 0
    args = ["train", "cdnet", "--dataset", str(tmp_path / "spcd"), "--out", str(tmp_path / "model"),
            "--epochs", "1", "--batch-size", "8", "--crop", "32", "--no-resize", "--val-fraction", "0.34",
            "--device", "cpu", "--seed", "1", "--quiet"]
    assert main(args) == 0
    assert "validation SRCC" in capsys.readouterr().out
    net, cfg = load_cdnet(tmp_path / "model")
    assert cfg["source"]["epoch"] == 1 and cfg["source"]["split"] == "train"
    model = cdbench.create_model(tmp_path / "model", device="cpu", resize=False)
    assert np.isfinite(model.score([(str(root / "images" / "I0001_01_01.png"),
                                     str(root / "images" / "I0001_02_01.png"))])).all()
    # rerun with more epochs: continues from the saved state
    assert main(args[:6] + ["--epochs", "2"] + args[8:]) == 0
    hist = json.loads((tmp_path / "model" / "history.json").read_text())
    assert [h["epoch"] for h in hist["epochs"]] == [1, 2]
    assert main(["train", "cdnet", "--dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "m2")]) == 2


def test_validation_holds_out_whole_scenes():
    from cdbench.models.cdnet.train import _split_by_scene

    data = TrainData([(np.zeros((1, 1, 3)), np.zeros((1, 1, 3)))] * 40, np.arange(40.0))
    scenes = [f"I{i % 10:04d}" for i in range(40)]
    train, val = _split_by_scene(data, scenes, 0.2, seed=0)
    held = {scenes[int(s)] for s in val.scores}
    assert len(held) == 2 and len(val) == 8 and len(train) == 32
    assert not held & {scenes[int(s)] for s in train.scores}
    assert _split_by_scene(data, scenes, 0.2, seed=0)[1].scores.tolist() == val.scores.tolist()  # deterministic
    one = _split_by_scene(data, ["I0001"] * 40, 0.25, seed=0)[1]  # one scene: pairs are held out
    assert len(one) == 10
