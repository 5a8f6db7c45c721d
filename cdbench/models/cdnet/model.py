"""CD-Net as a cdbench model: ``create_model("cdnet", weights=PATH)`` or ``create_model(FOLDER)``.

``score(pairs)`` returns the mean of the local CD map of each pair (Wang et al., TPAMI 2023);
``cd_map(pair)`` returns the map itself. Both run the same forward (:meth:`CDNet.cd_map`) on the
images prepared by :func:`cdbench.models.cdnet.preprocess.eval_resize` (the public code's evaluation
rules). Images are decoded by :func:`cdbench.data.images.load_pairs`, a chunk ahead of the network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from cdbench.data.images import load_pairs
from cdbench.errors import ModelError
from cdbench.models.base import CDModel, Pair
from cdbench.models.cdnet.checkpoint import is_cdnet_folder, load_any
from cdbench.models.cdnet.network import CDNet
from cdbench.models.cdnet.preprocess import check_pair, eval_resize, to_tensor
from cdbench.models.registry import register_folder_loader, register_model

Precision = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"``: CUDA when available, else the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ModelError(f"unknown device {device!r} ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for, but CUDA is not available here")
    return dev


def _pair_label(pair: Pair, i: int) -> str:
    a, b = pair
    if isinstance(a, (str, os.PathLike)) and isinstance(b, (str, os.PathLike)):
        return f"pair {i} ({os.fspath(a)}, {os.fspath(b)})"
    return f"pair {i}"


class CDNetModel(CDModel):
    """CD-Net scores and local CD maps (larger = more different; units of the SPCD human scores).

    Options: ``device`` (``"auto"``: CUDA when available), ``batch_size`` (pairs per forward, pairs
    of equal size batched together; default 1 on the CPU, 8 on a GPU), ``precision`` (``"fp32"``;
    ``"bf16"``/``"fp16"`` autocast, the quadratic form stays float32), ``channels_last``, ``resize``
    (the public code's evaluation rules; ``False`` for the native resolution), ``band_rows`` (rows per
    band of the per-pixel part; ``"auto"``: 32 on the CPU, whole images on a GPU), ``workers`` (image
    decoding threads).
    """

    name = "cdnet"
    kind = "learned"
    scale = "difference"
    can_describe = False

    def __init__(self, network: CDNet, *, source: dict[str, Any] | None = None,
                 device: str | torch.device | None = "auto", batch_size: int | None = None,
                 precision: Precision = "fp32", channels_last: bool = True, resize: bool = True,
                 band_rows: int | None | Literal["auto"] = "auto", workers: int | None = None) -> None:
        if precision not in ("fp32", "bf16", "fp16"):
            raise ModelError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
        self.device = resolve_device(device)
        if batch_size is None:  # a CPU gains nothing from batching 1024x1024 pairs, a GPU does
            batch_size = 1 if self.device.type == "cpu" else 8
        if int(batch_size) < 1:
            raise ModelError(f"batch_size must be >= 1, got {batch_size}")
        if precision == "fp16" and self.device.type == "cpu":
            raise ModelError("precision fp16 needs a CUDA device (use bf16 or fp32 on the CPU)")
        self.network = network.eval().to(self.device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.network.to(memory_format=self.memory_format)
        for p in self.network.parameters():
            p.requires_grad_(False)
        self.source = dict(source or {})
        self.batch_size = int(batch_size)
        self.precision = precision
        self.resize = bool(resize)
        # bands keep the per-pixel part in cache on the CPU; a GPU prefers whole images
        self.band_rows = (32 if self.device.type == "cpu" else None) if band_rows == "auto" else band_rows
        self.workers = workers

    # -- the interface ---------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        src = self.source
        weights = {k: src[k] for k in ("weights", "weights_sha256", "converted_from", "sha256", "epoch")
                   if src.get(k) is not None}
        return {"weights": weights, "precision": self.precision, "resize": self.resize,
                "preprocess": "public CD-Net evaluation rules: side < 384 -> bicubic to 384; both sides "
                              ">= 1024 -> bilinear, shorter side 1024" if self.resize else "none"}

    def score(self, pairs: Sequence[Pair], *, progress: bool = False) -> np.ndarray:
        """One float64 score per pair: the mean of its local CD map."""
        out = np.empty(len(pairs), dtype=np.float64)
        bar = _progress(len(pairs), progress, "cdnet")
        for idx, maps in self._maps(pairs):
            out[idx] = maps.double().mean(dim=(1, 2)).cpu().numpy()  # one transfer per batch
            bar.update(len(idx))
        bar.close()
        return out

    def cd_map(self, pair: Pair) -> np.ndarray:
        """The local CD map of one pair, ``(H, W)`` float32, at the resolution the network sees
        (after the evaluation resizing; the native one with ``resize=False``)."""
        (_, maps), = list(self._maps([pair]))
        return maps[0].cpu().numpy()

    # -- the one forward -------------------------------------------------------------------------
    def _prepare(self, pair: tuple[np.ndarray, np.ndarray], label: str) -> tuple[np.ndarray, np.ndarray]:
        a, b = (eval_resize(im, self.resize) for im in pair)
        check_pair(a, b, label)
        return a, b

    def _load_chunk(self, pairs: Sequence[Pair], start: int) -> list[tuple[np.ndarray, np.ndarray]]:
        decoded = load_pairs(pairs, workers=self.workers)
        return [self._prepare(p, _pair_label(pairs[k], start + k)) for k, p in enumerate(decoded)]

    def _batch_tensor(self, images: list[np.ndarray]) -> torch.Tensor:
        """(B, 3, H, W) float32 in [0, 1] on the device; uint8 images travel as uint8 (4x fewer bytes
        to the GPU) and are divided by 255 there, which gives the same floats as on the CPU."""
        if all(im.dtype == np.uint8 for im in images):
            t = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
            if self.device.type == "cuda":
                t = t.pin_memory()
            t = t.to(self.device, non_blocking=True).float().div_(255.0)
        else:
            t = torch.stack([to_tensor(im) for im in images]).to(self.device, non_blocking=True)
        return t.contiguous(memory_format=self.memory_format)

    @torch.inference_mode()
    def _forward(self, batch: list[tuple[np.ndarray, np.ndarray]]) -> torch.Tensor:
        x = self._batch_tensor([a for a, _ in batch])
        y = self._batch_tensor([b for _, b in batch])
        ctx = (torch.autocast(self.device.type, dtype=_DTYPES[self.precision])
               if self.precision in _DTYPES else nullcontext())
        with ctx:
            return self.network.cd_map(x, y, band_rows=self.band_rows).float()

    def _forward_fitting(self, batch: list[tuple[np.ndarray, np.ndarray]]) -> torch.Tensor:
        """:meth:`_forward`, halving the batch (and keeping the smaller size) on GPU out-of-memory, then
        falling back to 64-row bands for a single pair."""
        try:
            return self._forward(batch)
        except torch.cuda.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if len(batch) > 1:
                half = len(batch) // 2
                self.batch_size = max(1, min(self.batch_size, half))
                return torch.cat([self._forward_fitting(batch[:half]), self._forward_fitting(batch[half:])])
            if self.band_rows is None or self.band_rows > 64:
                self.band_rows = 64
                return self._forward_fitting(batch)
            raise ModelError(f"out of GPU memory for one {batch[0][0].shape[1]}x{batch[0][0].shape[0]} pair "
                             f"even in bands; use device='cpu'") from None

    def _maps(self, pairs: Sequence[Pair]) -> Iterator[tuple[list[int], torch.Tensor]]:
        """``(indices, maps (B, H, W))`` per forward batch; decoding of the next chunk overlaps the network."""
        pairs = list(pairs)
        chunk = max(self.batch_size * 4, 8)
        starts = list(range(0, len(pairs), chunk))
        if not starts:
            return
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(self._load_chunk, pairs[starts[0]:starts[0] + chunk], starts[0])
            for n, s in enumerate(starts):
                prepared = pending.result()
                if n + 1 < len(starts):
                    nxt = starts[n + 1]
                    pending = pool.submit(self._load_chunk, pairs[nxt:nxt + chunk], nxt)
                # batch pairs of equal size together, in order
                groups: dict[tuple[int, ...], list[int]] = {}
                for k, (a, _) in enumerate(prepared):
                    groups.setdefault(a.shape, []).append(k)
                for ks in groups.values():
                    for b0 in range(0, len(ks), self.batch_size):
                        part = ks[b0:b0 + self.batch_size]
                        yield [s + k for k in part], self._forward_fitting([prepared[k] for k in part])


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="pair", dynamic_ncols=True, leave=False)


def _model_from(weights: str | os.PathLike, options: dict[str, Any]) -> CDNetModel:
    net, cfg = load_any(weights)
    source = dict(cfg.get("source") or {})
    source["weights"] = str(Path(weights).expanduser())
    if cfg.get("weights_sha256"):
        source["weights_sha256"] = cfg["weights_sha256"]
    try:
        return CDNetModel(net, source=source, **options)
    except TypeError as e:
        raise ModelError(f"cdnet: {e}") from None


@register_model("cdnet", "cd-net")
def create_cdnet(weights: str | os.PathLike | None = None, **options: Any) -> CDNetModel:
    """``create_model("cdnet", weights=PATH, device=..., batch_size=..., precision=...)``.

    ``weights``: a CD-Net folder (``config.json`` + ``model.safetensors``) or an original ``.pt``.
    """
    if weights is None:
        raise ModelError("cdnet needs weights=PATH: a CD-Net folder (config.json + model.safetensors, see "
                         "'cdbench train cdnet' / 'cdbench convert cdnet') or an original CD-Net .pt file")
    return _model_from(weights, options)


@register_folder_loader("cdnet", is_cdnet_folder)
def load_cdnet_folder(folder: Path, **options: Any) -> CDNetModel:
    """``create_model(FOLDER)`` for folders whose ``config.json`` says ``"model_type": "cdnet"``."""
    return _model_from(folder, options)
