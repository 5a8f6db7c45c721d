"""CD-Net checkpoints: our folder format, and import of the original training checkpoints.

Our format (what ``cdbench train cdnet`` writes and ``cdbench convert cdnet`` produces) is a folder:

- ``config.json``: ``{"model_type": "cdnet", "format_version": 1, "architecture": {...},
  "preprocess": {...}, "source": {...}}``;
- ``model.safetensors``: ``conv1x1.weight`` (32,3,1,1), ``conv11x11.weight`` (32,3,11,11),
  ``conv_m1.weight`` (32,64,1,1), ``conv_m2.weight`` (16,32,1,1), ``conv_m3.weight`` (12,16,1,1) and
  ``cube`` (12,12), float32.

The original public code (Wang et al., TPAMI 2023) saves ``torch.save({"epoch", "netF_dict",
"optimizer", "cube"})`` with ``netF_dict`` keys prefixed ``module.`` (DataParallel). It is read with
``torch.load(weights_only=True)`` (no code from the file runs), on the CPU whatever device it was saved
from, and only the network weights and ``cube`` are kept (the optimizer state is dropped).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from cdbench.errors import ModelError
from cdbench.io import atomic_directory, atomic_write_bytes, atomic_write_json
from cdbench.models.cdnet.network import CDNet
from cdbench.models.cdnet.preprocess import EVAL_SIDE, MIN_SIDE

MODEL_TYPE = "cdnet"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor of a CD-Net checkpoint and its shape."""
    return {k: tuple(v.shape) for k, v in CDNet().state_dict().items()}


def _check_state(state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    want = expected_shapes()
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                ([f"unexpected {', '.join(extra)}"] if extra else [])
        raise ModelError(f"{where}: not a CD-Net checkpoint ({'; '.join(parts)})")
    for k, shape in want.items():
        t = state[k]
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ModelError(f"{where}: tensor {k!r} has shape {got}, expected {shape}")
        if not t.is_floating_point() or not torch.isfinite(t).all():
            raise ModelError(f"{where}: tensor {k!r} must hold finite floating-point values")
    return {k: state[k].detach().to("cpu", torch.float32).contiguous() for k in want}


def network_from_state(state: dict[str, torch.Tensor], where: str = "state dict") -> CDNet:
    """A :class:`CDNet` holding ``state`` (checked: exact keys, shapes, finite values)."""
    net = CDNet()
    net.load_state_dict(_check_state(state, where))
    return net.eval()


def is_cdnet_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder/config.json`` says ``"model_type": "cdnet"``."""
    cfg = Path(folder) / CONFIG_NAME
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("model_type") == MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


def _weights_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_cdnet(net: CDNet, folder: str | os.PathLike, source: dict[str, Any] | None = None) -> Path:
    """Write ``net`` as ``folder/model.safetensors`` then ``folder/config.json`` (each atomically).

    ``source`` records where the weights come from (training run, converted file, epoch, ...).
    """
    from safetensors.torch import save

    folder = Path(folder)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in net.state_dict().items()}
    data = save(state, metadata={"format": "pt"})  # one key: the same weights give the same bytes
    atomic_write_bytes(folder / WEIGHTS_NAME, data)
    from cdbench import __version__

    atomic_write_json(folder / CONFIG_NAME, {
        "model_type": MODEL_TYPE,
        "format_version": FORMAT_VERSION,
        "architecture": {"features": 12, "negative_slope": net.negative_slope,
                         "reference": "Wang et al., Measuring Perceptual Color Differences of Smartphone "
                                      "Photographs, IEEE TPAMI 2023"},
        "preprocess": {"min_side": MIN_SIDE, "eval_side": EVAL_SIDE, "input": "sRGB in [0, 1]"},
        "weights_sha256": _weights_sha256(data),
        "cdbench_version": __version__,
        "source": source or {},
    })
    return folder


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """``config.json`` of a CD-Net folder, checked (model type, format version)."""
    path = Path(folder) / CONFIG_NAME
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: not found (a CD-Net folder holds config.json and {WEIGHTS_NAME})") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or cfg.get("model_type") != MODEL_TYPE:
        raise ModelError(f"{path}: model_type is {cfg.get('model_type') if isinstance(cfg, dict) else None!r}, "
                         f"expected {MODEL_TYPE!r}")
    if int(cfg.get("format_version", 1)) > FORMAT_VERSION:
        raise ModelError(f"{path}: format_version {cfg['format_version']} is newer than this cdbench "
                         f"reads ({FORMAT_VERSION}); upgrade cdbench")
    return cfg


def load_cdnet(folder: str | os.PathLike) -> tuple[CDNet, dict[str, Any]]:
    """``(network, config)`` from a CD-Net folder (our format), on the CPU, in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    folder = Path(folder)
    cfg = read_config(folder)
    path = folder / WEIGHTS_NAME
    try:
        data = path.read_bytes()
        state = load(data)
    except FileNotFoundError:
        raise ModelError(f"{path}: not found") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{path}: cannot read safetensors ({e})") from None
    want = cfg.get("weights_sha256")
    if want and want != _weights_sha256(data):
        raise ModelError(f"{path}: SHA-256 differs from config.json's weights_sha256 (file changed or torn)")
    net = network_from_state(state, str(path))
    slope = cfg.get("architecture", {}).get("negative_slope")
    if slope is not None:
        net.negative_slope = float(slope)
    return net, cfg


def read_original_checkpoint(path: str | os.PathLike) -> tuple[CDNet, dict[str, Any]]:
    """``(network, info)`` from an original CD-Net ``torch.save`` file (``netF_dict`` + ``cube``).

    Loaded with ``weights_only=True`` on the CPU; ``module.`` prefixes (DataParallel) are removed;
    ``info`` holds the file name, its SHA-256 and the saved epoch.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint file not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle errors of every kind become one clear line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{path}: cannot be read as a weights-only torch checkpoint ({msg})") from None
    if not isinstance(ckpt, dict) or "netF_dict" not in ckpt or "cube" not in ckpt:
        keys = sorted(map(str, ckpt)) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ModelError(f"{path}: not an original CD-Net checkpoint (needs 'netF_dict' and 'cube', has {keys})")
    net_state = ckpt["netF_dict"]
    if not isinstance(net_state, dict):
        raise ModelError(f"{path}: 'netF_dict' is a {type(net_state).__name__}, expected a state dict")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in net_state.items()}
    state["cube"] = ckpt["cube"]
    net = network_from_state(state, str(path))
    epoch = ckpt.get("epoch")
    info = {"converted_from": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "format": "original CD-Net torch.save (netF_dict, cube)",
            "epoch": int(epoch) if isinstance(epoch, (int, torch.Tensor)) else None}
    return net, info


def convert_original_checkpoint(src: str | os.PathLike, out_dir: str | os.PathLike,
                                overwrite: bool = False) -> Path:
    """Convert an original ``.pt`` checkpoint to our folder format, written atomically as a whole."""
    net, info = read_original_checkpoint(src)
    try:
        with atomic_directory(out_dir, overwrite=overwrite) as tmp:
            save_cdnet(net, tmp, source=info)
    except FileExistsError as e:
        raise ModelError(str(e)) from None
    return Path(out_dir)


def load_any(weights: str | os.PathLike) -> tuple[CDNet, dict[str, Any]]:
    """A CD-Net from our folder (or its ``config.json``/``model.safetensors``) or an original ``.pt`` file."""
    p = Path(weights).expanduser()
    if p.is_dir():
        return load_cdnet(p)
    if p.name in (CONFIG_NAME, WEIGHTS_NAME) and p.is_file():
        return load_cdnet(p.parent)
    if p.is_file():
        net, info = read_original_checkpoint(p)
        return net, {"model_type": MODEL_TYPE, "source": info}
    raise ModelError(f"{p}: no such CD-Net checkpoint (a folder with config.json + {WEIGHTS_NAME}, "
                     f"or an original .pt file)")
