"""CD-Net checkpoints: our folder format, conversion of the original torch.save format (identical
scores), weights-only loading, and clear errors for damaged or foreign files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import cdbench
from cdbench.cli import main
from cdbench.errors import ModelError
from cdbench.models.cdnet.checkpoint import (
    convert_original_checkpoint,
    is_cdnet_folder,
    load_cdnet,
    read_original_checkpoint,
    save_cdnet,
)
from cdbench.models.cdnet.network import CDNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _trained_like_net(seed: int = 0) -> CDNet:
    net = CDNet()
    net.reset_parameters(generator=torch.Generator().manual_seed(seed))
    return net


def write_original_checkpoint(path, net: CDNet, epoch: int = 7) -> None:
    """What the public training code writes: DataParallel keys, the cube as a leaf tensor with grad,
    and the Adam state after a step (``torch.save({'epoch', 'netF_dict', 'optimizer', 'cube'})``)."""
    convs = {k: v.clone() for k, v in net.state_dict().items() if k != "cube"}
    cube = net.cube.detach().clone().requires_grad_(True)
    params = [torch.nn.Parameter(v.clone()) for v in convs.values()]
    opt = torch.optim.Adam([{"params": params, "lr": 1e-3}, {"params": [cube], "lr": 1e-3}])
    (sum(p.sum() for p in params) + cube.sum()).backward()
    opt.step()
    with torch.no_grad():  # the step changed the copies; keep the intended weights in netF_dict
        cube.copy_(net.cube)
    torch.save({"epoch": epoch, "netF_dict": {f"module.{k}": v for k, v in convs.items()},
                "optimizer": opt.state_dict(), "cube": cube}, path)


def _pairs(n=3, size=40, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = rng.integers(0, 256, (size, size + 5, 3), dtype=np.uint8)
        b = np.clip(a.astype(int) + rng.integers(-30, 30, 3), 0, 255).astype(np.uint8)
        out.append((a, b))
    return out


def test_folder_round_trip_is_exact(tmp_path):
    net = _trained_like_net(1)
    save_cdnet(net, tmp_path / "m", source={"note": "test"})
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["model_type"] == "cdnet" and cfg["format_version"] == 1 and cfg["source"] == {"note": "test"}
    back, cfg2 = load_cdnet(tmp_path / "m")
    for k, v in net.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    assert is_cdnet_folder(tmp_path / "m") and not is_cdnet_folder(tmp_path)


def test_convert_original_checkpoint_gives_identical_scores(tmp_path):
    net = _trained_like_net(2)
    pt = tmp_path / "CD-00007.pt"
    write_original_checkpoint(pt, net)
    assert main(["convert", "cdnet", str(pt), str(tmp_path / "conv")]) == 0
    cfg = json.loads((tmp_path / "conv" / "config.json").read_text())
    assert cfg["source"]["epoch"] == 7 and cfg["source"]["converted_from"] == "CD-00007.pt"
    pairs = _pairs(seed=2)
    converted = cdbench.create_model(tmp_path / "conv", device="cpu", resize=False)
    direct = cdbench.create_model("cdnet", weights=pt, device="cpu", resize=False)
    want = np.array([net(*(torch.from_numpy(im).permute(2, 0, 1)[None].float() / 255 for im in p)).item()
                     for p in pairs])
    np.testing.assert_array_equal(converted.score(pairs), direct.score(pairs))
    np.testing.assert_allclose(converted.score(pairs), want, rtol=1e-5)
    assert converted.info()["settings"]["weights"]["converted_from"] == "CD-00007.pt"
    # converting again refuses to overwrite, unless asked
    assert main(["convert", "cdnet", str(pt), str(tmp_path / "conv")]) == 2
    assert main(["convert", "cdnet", str(pt), str(tmp_path / "conv"), "--overwrite"]) == 0


def test_plain_keys_without_module_prefix_are_accepted(tmp_path):
    net = _trained_like_net(3)
    torch.save({"netF_dict": {k: v for k, v in net.state_dict().items() if k != "cube"}, "cube": net.cube.data},
               tmp_path / "plain.pt")
    back, info = read_original_checkpoint(tmp_path / "plain.pt")
    assert torch.equal(back.cube, net.cube.data) and info["epoch"] is None


class _Boom:
    """An object whose unpickling would run code (writes a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickled_code_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"netF_dict": _Boom(marker), "cube": torch.rand(12, 12)}, tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="weights-only"):
        read_original_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda d: d.pop("cube"), "needs 'netF_dict' and 'cube'"),
    (lambda d: d["netF_dict"].pop("module.conv_m2.weight"), "missing conv_m2.weight"),
    (lambda d: d["netF_dict"].__setitem__("module.conv_m9.weight", torch.zeros(1)), "unexpected conv_m9.weight"),
    (lambda d: d.__setitem__("cube", torch.rand(11, 12)), r"'cube' has shape \(11, 12\), expected \(12, 12\)"),
    (lambda d: d["netF_dict"]["module.conv1x1.weight"].fill_(float("nan")), "finite"),
])
def test_damaged_original_checkpoints_are_one_line_errors(tmp_path, mutate, match):
    net = _trained_like_net(4)
    d = {"epoch": 1, "netF_dict": {f"module.{k}": v.clone() for k, v in net.state_dict().items() if k != "cube"},
         "cube": net.cube.data.clone()}
    mutate(d)
    torch.save(d, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match=match) as e:
        read_original_checkpoint(tmp_path / "bad.pt")
    assert "bad.pt" in str(e.value) and "\n" not in str(e.value)


def test_folder_errors_name_the_file(tmp_path):
    net = _trained_like_net(5)
    save_cdnet(net, tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        load_cdnet(tmp_path / "m")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "llava"}')
    with pytest.raises(ModelError, match="expected 'cdnet'"):
        load_cdnet(tmp_path / "other")
    with pytest.raises(ModelError, match="not a model folder"):
        cdbench.create_model(tmp_path / "other")
    with pytest.raises(ModelError, match="needs weights=PATH"):
        cdbench.create_model("cdnet")
    with pytest.raises(ModelError, match="no such CD-Net checkpoint"):
        cdbench.create_model("cdnet", weights=tmp_path / "missing")


def test_convert_writes_nothing_on_failure(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError):
        convert_original_checkpoint(tmp_path / "junk.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main(["convert", "cdnet", str(tmp_path / "junk.pt"), str(tmp_path / "out")]) == 2
