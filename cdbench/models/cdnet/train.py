"""Training CD-Net (Wang et al., "Measuring Perceptual Color Differences of Smartphone Photographs",
IEEE TPAMI 2023), as its public code does, made reproducible and resumable.

- Loss: MSE between the predicted score (mean of the local CD map) and the human score.
- Adam, lr 1e-3, on the conv weights and on the 12x12 matrix ``C`` (two parameter groups);
  multi-step decay: in epoch ``e`` the rate is ``lr * gamma ** #{milestones <= e}`` (``MultiStepLR``),
  defaults milestones 5, 10, 15, 20, 30, 35, gamma 0.5, 50 epochs, batch 8 (the public ``Main.py``).
- EMA (decay 0.999) of the conv weights after every step; validation and the saved model use the EMA
  weights with the current ``C`` (as the public code, whose EMA covers the network only).
- Augmentation, identical for both images of a pair: rotation by U(-3, 3) degrees (nearest, zero
  fill), horizontal and vertical flips (p = 0.5), colour inversion (p = 0.5), then a random crop
  (768 by default). Images with a side < 384 are first upsized (bicubic) as at evaluation.
- Model selection: after each epoch the EMA model scores the validation pairs (evaluation resizing)
  and the best SRCC so far is written to ``OUT/config.json`` + ``OUT/model.safetensors``, loadable
  with ``create_model(OUT)``.
- Reproducible: every random draw comes from generators seeded by ``(seed, epoch)`` (init from
  ``seed``), so the same seed gives the same weights on the CPU, and a run resumed from
  ``OUT/train_state.pt`` (written atomically after every epoch) ends with the same weights as an
  uninterrupted one.
- GPU when present (channels-last); optional mixed precision (``amp="bf16"`` or ``"fp16"`` with
  loss scaling); the quadratic form and the loss stay in float32.
"""

from __future__ import annotations

import copy
import hashlib
import io
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cdbench.data.images import load_pairs
from cdbench.data.pairs import scene_of
from cdbench.errors import DataError, ModelError
from cdbench.io import atomic_write_bytes, atomic_write_json
from cdbench.models.base import ImageLike
from cdbench.models.cdnet.checkpoint import save_cdnet
from cdbench.models.cdnet.model import CDNetModel, resolve_device
from cdbench.models.cdnet.network import MIN_SIDE, CDNet
from cdbench.models.cdnet.preprocess import check_pair, upsize_small

STATE_NAME = "train_state.pt"
HISTORY_NAME = "history.json"
RUN_NAME = "train_config.json"

_RUNTIME_FIELDS = ("epochs", "device", "workers", "eval_batch_size", "progress")
"""Settings that may change between a run and its resumption (the rest must match)."""


@dataclass
class TrainConfig:
    """Everything that defines a CD-Net training run (defaults: the public code's ``Main.py``)."""

    epochs: int = 50
    batch_size: int = 8
    crop: int = 768
    lr: float = 1e-3
    milestones: tuple[int, ...] = (5, 10, 15, 20, 30, 35)
    gamma: float = 0.5
    ema_decay: float = 0.999
    rotation: float = 3.0
    hflip: float = 0.5
    vflip: float = 0.5
    invert: float = 0.5
    resize: bool = True
    seed: int = 19981025
    amp: str = "none"
    device: str = "auto"
    eval_batch_size: int | None = None
    workers: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.milestones = tuple(int(m) for m in self.milestones)
        checks = [(self.epochs >= 1, "epochs must be >= 1"), (self.batch_size >= 1, "batch_size must be >= 1"),
                  (self.crop >= MIN_SIDE, f"crop must be >= {MIN_SIDE}"), (self.lr > 0, "lr must be > 0"),
                  (0 < self.gamma <= 1, "gamma must be in (0, 1]"), (0 <= self.ema_decay < 1, "ema_decay in [0, 1)"),
                  (self.amp in ("none", "bf16", "fp16"), "amp must be none, bf16 or fp16"),
                  (all(0 <= p <= 1 for p in (self.hflip, self.vflip, self.invert)), "probabilities in [0, 1]"),
                  (0 <= self.rotation <= 180, "rotation must be in [0, 180] degrees")]
        for ok, msg in checks:
            if not ok:
                raise ModelError(f"train cdnet: {msg}")

    def lr_at(self, epoch: int) -> float:
        """Multi-step decay (``MultiStepLR``): ``lr * gamma ** #{milestones <= epoch}``."""
        return self.lr * self.gamma ** sum(1 for m in self.milestones if m <= epoch)

    def fingerprint_fields(self) -> dict[str, Any]:
        d = asdict(self)
        d["milestones"] = list(d["milestones"])
        return {k: v for k, v in d.items() if k not in _RUNTIME_FIELDS}


@dataclass
class TrainData:
    """Labelled pairs: images (anything :func:`cdbench.data.images.load_image` takes) and scores."""

    pairs: list[tuple[ImageLike, ImageLike]]
    scores: np.ndarray

    def __post_init__(self) -> None:
        self.pairs = list(self.pairs)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if len(self.pairs) != len(self.scores):
            raise DataError(f"{len(self.pairs)} pairs but {len(self.scores)} scores")
        bad = np.flatnonzero(~np.isfinite(self.scores))
        if bad.size:
            raise DataError(f"score of pair {int(bad[0])} is not a finite number ({self.scores[bad[0]]}); "
                            f"{bad.size} such pairs (hidden test labels cannot be trained on)")

    def __len__(self) -> int:
        return len(self.pairs)

    def subset(self, idx: Sequence[int]) -> TrainData:
        return TrainData([self.pairs[i] for i in idx], self.scores[list(idx)])


@dataclass
class TrainResult:
    """What a run produced: the output folder, the best epoch and its validation SRCC, the history."""

    out_dir: Path
    best_epoch: int | None
    best_srcc: float | None
    history: list[dict[str, Any]]
    network: CDNet


# -- reproducible randomness -------------------------------------------------------------------------
def _generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, *keys)`` through SHA-256 (stable across versions)."""
    digest = hashlib.sha256(":".join(str(int(k)) for k in (seed, *keys)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") & ((1 << 63) - 1))


@dataclass(frozen=True)
class Augment:
    """The random transform of one pair: applied identically to both images."""

    angle: float       # degrees, counter-clockwise
    hflip: bool
    vflip: bool
    invert: bool
    top: float         # crop offsets as fractions in [0, 1) of the free range
    left: float


def draw_augments(n: int, cfg: TrainConfig, gen: torch.Generator) -> list[Augment]:
    """``n`` draws, in one fixed order, from ``gen``."""
    u = torch.rand((n, 6), generator=gen, dtype=torch.float64).numpy()
    return [Augment(angle=float((2 * r[0] - 1) * cfg.rotation), hflip=bool(r[1] < cfg.hflip),
                    vflip=bool(r[2] < cfg.vflip), invert=bool(r[3] < cfg.invert), top=float(r[4]),
                    left=float(r[5])) for r in u]


def crop_indices(h: int, w: int, c: int, aug: Augment) -> tuple[np.ndarray, np.ndarray]:
    """Flat source indices (``row * w + col``) and validity of the ``c x c`` output of rotate -> flips
    -> crop.

    Rotation about the image centre by ``aug.angle`` degrees (counter-clockwise as displayed) with
    nearest-neighbour sampling; pixels whose source falls outside the image are invalid (filled with
    0, as ``RandomRotation``'s fill). Built by broadcasting one row and one column vector.
    """
    top = int(aug.top * (h - c + 1))
    left = int(aug.left * (w - c + 1))
    rows = np.arange(top, top + c, dtype=np.float64)
    cols = np.arange(left, left + c, dtype=np.float64)
    if aug.vflip:
        rows = (h - 1) - rows
    if aug.hflip:
        cols = (w - 1) - cols
    t = math.radians(aug.angle)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    dy, dx = (rows - cy)[:, None], (cols - cx)[None, :]
    ri = np.rint(cy + dx * math.sin(t) + dy * math.cos(t)).astype(np.int64)
    ci = np.rint(cx + dx * math.cos(t) - dy * math.sin(t)).astype(np.int64)
    valid = (ri >= 0) & (ri < h) & (ci >= 0) & (ci < w)
    return np.clip(ri, 0, h - 1) * w + np.clip(ci, 0, w - 1), valid


def crop_pair(a: np.ndarray, b: np.ndarray, c: int, aug: Augment
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Both images through the same rotation, flips and ``c x c`` crop, in their own dtype.

    Returns the two crops and the validity mask (``None`` when every pixel has a source; pixels
    rotated in from outside the image are 0, ``RandomRotation``'s fill). Without rotation the crop is
    a (flipped) slice: no index arrays are built.
    """
    h, w = a.shape[:2]
    if aug.angle == 0:
        top = int(aug.top * (h - c + 1))
        left = int(aug.left * (w - c + 1))
        rows = slice(h - 1 - top, h - 1 - top - c if h - 1 - top - c >= 0 else None, -1) if aug.vflip \
            else slice(top, top + c)
        cols = slice(w - 1 - left, w - 1 - left - c if w - 1 - left - c >= 0 else None, -1) if aug.hflip \
            else slice(left, left + c)
        return np.ascontiguousarray(a[rows, cols]), np.ascontiguousarray(b[rows, cols]), None
    flat, valid = crop_indices(h, w, c, aug)
    pick = [np.take(im.reshape(h * w, -1), flat, axis=0) for im in (a, b)]
    return pick[0], pick[1], (None if valid.all() else valid)


def finish_batch(crops: torch.Tensor, valid: torch.Tensor | None, invert: torch.Tensor) -> torch.Tensor:
    """``(B, c, c, 3)`` uint8 or float crops -> ``(B, 3, c, c)`` float32 in [0, 1]: the rotation's zero
    fill, then the colour inversion ``1 - x`` where ``invert`` (fill pixels become 1, as in the public
    code, where ``RandomInvert`` follows ``RandomRotation``). Runs on the crops' device."""
    x = crops.permute(0, 3, 1, 2).float()
    if crops.dtype == torch.uint8:
        x = x.div_(255.0)
    if valid is not None:
        x = x * valid[:, None].to(x.dtype)
    if bool(invert.any()):
        x = torch.where(invert[:, None, None, None], 1.0 - x, x)
    return x


def augment_pair(a: np.ndarray, b: np.ndarray, c: int, aug: Augment) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images of a pair through the same rotation, flips, inversion and crop -> (3, c, c) tensors."""
    ca, cb, valid = crop_pair(a, b, c, aug)
    v = None if valid is None else torch.from_numpy(valid)[None]
    inv = torch.tensor([aug.invert])
    x = finish_batch(torch.from_numpy(np.array(ca))[None], v, inv)
    y = finish_batch(torch.from_numpy(np.array(cb))[None], v, inv)
    return x[0], y[0]


# -- the training loop -------------------------------------------------------------------------------
class _EMA:
    """Exponential moving average of the conv weights (``shadow = d * shadow + (1 - d) * w``)."""

    def __init__(self, net: CDNet, decay: float) -> None:
        self.decay = decay
        self.shadow = {n: p.detach().clone() for n, p in self._params(net)}

    @staticmethod
    def _params(net: CDNet) -> Iterator[tuple[str, torch.nn.Parameter]]:
        return ((f"{i}", conv.weight) for i, conv in enumerate(net.convs()))

    @torch.no_grad()
    def update(self, net: CDNet) -> None:
        for n, p in self._params(net):
            self.shadow[n].mul_(self.decay).add_(p.detach(), alpha=1.0 - self.decay)

    @torch.no_grad()
    def averaged(self, net: CDNet) -> CDNet:
        """A copy of ``net`` with the EMA conv weights (and ``net``'s current ``C``)."""
        out = copy.deepcopy(net)
        for n, p in self._params(out):
            p.copy_(self.shadow[n])
        return out


def _prepare_train_pair(pair: tuple[np.ndarray, np.ndarray], label: str, resize: bool
                        ) -> tuple[np.ndarray, np.ndarray]:
    a, b = (upsize_small(im) if resize else im for im in pair)
    check_pair(a, b, label)
    return a, b


def _label(data: TrainData, i: int) -> str:
    a, b = data.pairs[i]
    if isinstance(a, (str, os.PathLike)):
        return f"training pair {i} ({os.fspath(a)}, {os.fspath(b)})"
    return f"training pair {i}"


@dataclass
class _Batch:
    x: torch.Tensor              # (B, c, c, 3) uint8 or float32 crops
    y: torch.Tensor
    valid: torch.Tensor | None   # (B, c, c) bool, None when no pixel was rotated in from outside
    invert: torch.Tensor         # (B,) bool
    target: torch.Tensor         # (B,) float32

    def to(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs ``x``, ``y`` (B, 3, c, c) channels-last float32 and the target, on ``device``."""
        pin = device.type == "cuda"

        def move(t):
            return (t.pin_memory() if pin else t).to(device, non_blocking=True)

        valid = move(self.valid) if self.valid is not None else None
        inv = self.invert.to(device)
        x = finish_batch(move(self.x), valid, inv).contiguous(memory_format=torch.channels_last)
        y = finish_batch(move(self.y), valid, inv).contiguous(memory_format=torch.channels_last)
        return x, y, self.target.to(device)


def _make_batch(data: TrainData, idx: list[int], augs: list[Augment], cfg: TrainConfig,
                pool: ThreadPoolExecutor) -> _Batch:
    """Decode (each unique image once), prepare and crop one batch; the crops stay uint8 for uint8
    images (the float conversion, fill and inversion run on the training device)."""
    decoded = load_pairs([data.pairs[i] for i in idx], workers=cfg.workers)
    prepared = list(pool.map(lambda k: _prepare_train_pair(decoded[k], _label(data, idx[k]), cfg.resize),
                             range(len(idx))))
    c = min([cfg.crop] + [min(a.shape[:2]) for a, _ in prepared])
    crops = list(pool.map(lambda k: crop_pair(*prepared[k], c, augs[k]), range(len(idx))))
    uint8 = all(ca.dtype == np.uint8 and cb.dtype == np.uint8 for ca, cb, _ in crops)

    def stack(arrays):
        return torch.from_numpy(np.stack([np.asarray(t, np.uint8 if uint8 else np.float32) for t in arrays]))

    valid = None
    if any(v is not None for _, _, v in crops):
        valid = torch.from_numpy(np.stack([np.ones((c, c), bool) if v is None else v for _, _, v in crops]))
    return _Batch(stack([ca for ca, _, _ in crops]), stack([cb for _, cb, _ in crops]), valid,
                  torch.tensor([a.invert for a in augs]), torch.tensor(data.scores[idx], dtype=torch.float32))


def _save_state(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged state file: one clear line
        raise ModelError(f"{path}: cannot read the training state ({e}); delete it or use --overwrite") from None


def validate(net: CDNet, data: TrainData, cfg: TrainConfig, device: torch.device) -> dict[str, float]:
    """SRCC, PLCC and RMSE of ``net`` on ``data`` (evaluation resizing), from :mod:`cdbench.metrics`."""
    from cdbench.metrics import pearson, rmse, srcc

    model = CDNetModel(copy.deepcopy(net), device=device, batch_size=cfg.eval_batch_size, resize=cfg.resize,
                       workers=cfg.workers)
    pred = model.score(data.pairs, progress=cfg.progress)
    return {"srcc": srcc(pred, data.scores), "plcc": pearson(pred, data.scores), "rmse": rmse(pred, data.scores)}


def train_cdnet(train: TrainData, val: TrainData | None, out_dir: str | os.PathLike,
                cfg: TrainConfig | None = None, *, overwrite: bool = False, source: dict[str, Any] | None = None,
                stop_after: int | None = None, on_epoch: Callable[[dict[str, Any]], None] | None = None
                ) -> TrainResult:
    """Train CD-Net on ``train``, select the epoch by SRCC on ``val``, write everything to ``out_dir``.

    ``out_dir`` receives ``config.json`` + ``model.safetensors`` (the best model; without ``val``, the
    last one), ``train_state.pt`` (resume point, after every epoch), ``history.json`` (per-epoch loss,
    rate, validation metrics, time) and ``train_config.json`` (settings, data, versions). A run finds
    its ``train_state.pt`` and continues from the last finished epoch; settings other than
    ``epochs``/``device``/``workers`` must match (``overwrite=True`` starts afresh).
    ``stop_after`` ends the call after that many epochs of this call (the run stays resumable).
    """
    from tqdm.auto import tqdm

    from cdbench.versions import environment_versions

    cfg = cfg or TrainConfig()
    if len(train) == 0:
        raise DataError("no training pairs")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    if cfg.amp == "fp16" and device.type != "cuda":
        raise ModelError("train cdnet: amp fp16 needs a CUDA device (use bf16 or none on the CPU)")
    state_path = out / STATE_NAME
    if not overwrite and not state_path.exists() and any((out / n).exists() for n in ("config.json", RUN_NAME)):
        raise ModelError(f"{out} already holds a model but no {STATE_NAME} to resume from; choose another --out "
                         f"or use --overwrite to replace it")

    net = CDNet()
    net.reset_parameters(generator=_generator(cfg.seed, -1))
    net.to(device).to(memory_format=torch.channels_last)
    convs = [c.weight for c in net.convs()]
    optim = torch.optim.Adam([{"params": convs, "lr": cfg.lr}, {"params": [net.cube], "lr": cfg.lr}])
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16")
    ema = _EMA(net, cfg.ema_decay)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": None, "srcc": None}
    start = 0

    if state_path.exists() and not overwrite:
        st = _load_state(state_path)
        saved = st.get("config", {})
        now = cfg.fingerprint_fields()
        diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        if diff:
            raise ModelError(f"{state_path}: this run was started with other settings ({', '.join(diff)}: "
                             f"{', '.join(f'{saved.get(k)!r} -> {now.get(k)!r}' for k in diff)}); "
                             f"use the same settings to resume, or --overwrite to start again")
        net.load_state_dict(st["network"])
        optim.load_state_dict(st["optimizer"])
        ema.shadow = {k: v.to(device) for k, v in st["ema"].items()}
        if st.get("scaler"):
            scaler.load_state_dict(st["scaler"])
        history = list(st.get("history", []))
        best = dict(st.get("best", best))
        start = int(st["epoch"])
    from cdbench import __version__

    atomic_write_json(out / RUN_NAME, {
        "model_type": "cdnet", "cdbench_version": __version__, "settings": cfg.fingerprint_fields(),
        "runtime": {k: getattr(cfg, k) for k in _RUNTIME_FIELDS}, "device": str(device),
        "data": {"train_pairs": len(train), "validation_pairs": len(val) if val is not None else 0,
                 **(source or {})},
        "versions": environment_versions()})

    amp_ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16 if cfg.amp == "bf16" else torch.float16)) \
        if cfg.amp != "none" else nullcontext
    n_steps = math.ceil(len(train) / cfg.batch_size)
    done_here = 0
    workers = ThreadPoolExecutor(max(1, min(cfg.batch_size, cfg.workers or os.cpu_count() or 1)))
    try:
        for epoch in range(start, cfg.epochs):
            if stop_after is not None and done_here >= stop_after:
                break
            t0 = time.perf_counter()
            lr = cfg.lr_at(epoch)
            for g in optim.param_groups:
                g["lr"] = lr
            gen = _generator(cfg.seed, epoch)
            order = torch.randperm(len(train), generator=gen).tolist()
            augs = draw_augments(len(train), cfg, gen)
            batches = [order[s:s + cfg.batch_size] for s in range(0, len(order), cfg.batch_size)]
            net.train()
            losses: list[float] = []
            bar = tqdm(total=n_steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress,
                       unit="step", dynamic_ncols=True, leave=False)
            with ThreadPoolExecutor(1) as prefetch:
                def submit(b: list[int], augs: list[Augment] = augs):
                    return prefetch.submit(_make_batch, train, b, [augs[i] for i in b], cfg, workers)

                pending = submit(batches[0])
                for k in range(len(batches)):
                    x, y, target = pending.result().to(device)
                    if k + 1 < len(batches):
                        pending = submit(batches[k + 1])
                    optim.zero_grad(set_to_none=True)
                    with amp_ctx():
                        pred = net(x, y)
                    loss = F.mse_loss(pred.float(), target)
                    if not torch.isfinite(loss):
                        raise ModelError(f"epoch {epoch + 1}, step {k + 1}: the loss is {loss.item()} "
                                         f"(try a lower --lr, or --amp none)")
                    scaler.scale(loss).backward()
                    scaler.step(optim)
                    scaler.update()
                    ema.update(net)
                    losses.append(loss.item())
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr:.2e}")
            bar.close()
            averaged = ema.averaged(net).eval()
            record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "train_loss": float(np.mean(losses)),
                                      "steps": len(batches)}
            improved = val is None
            if val is not None and len(val):
                metrics = validate(averaged, val, cfg, device)
                record.update({f"val_{k}": (None if math.isnan(v) else v) for k, v in metrics.items()})
                s = metrics["srcc"]
                improved = not math.isnan(s) and (best["srcc"] is None or s > best["srcc"])
            if improved:
                best = {"epoch": epoch + 1, "srcc": record.get("val_srcc")}
                save_cdnet(averaged, out, source={"trained_by": "cdbench train cdnet", "epoch": epoch + 1,
                                                   "val_srcc": record.get("val_srcc"), **(source or {})})
            record["seconds"] = round(time.perf_counter() - t0, 3)
            history.append(record)
            _save_state(state_path, {
                "epoch": epoch + 1, "network": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                "ema": {k: v.detach().cpu() for k, v in ema.shadow.items()}, "optimizer": optim.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else {}, "history": history, "best": best,
                "config": cfg.fingerprint_fields()})
            atomic_write_json(out / HISTORY_NAME, {"best": best, "epochs": history})
            if cfg.progress:
                vs = f", val SRCC {record['val_srcc']:.4f}" if record.get("val_srcc") is not None else ""
                tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}: loss {record['train_loss']:.4f}{vs}"
                           f"{' (best)' if improved and val is not None else ''}")
            if on_epoch is not None:
                on_epoch(record)
            done_here += 1
    finally:
        workers.shutdown()
    net.eval()
    return TrainResult(out, best["epoch"], best["srcc"], history, net.cpu())


# -- datasets built by `cdbench build` ---------------------------------------------------------------
def _split_by_scene(data: TrainData, pair_scenes: Sequence[str], fraction: float, seed: int
                    ) -> tuple[TrainData, TrainData]:
    """Hold out ``fraction`` of the scenes (at least one), chosen by a seeded SHA-256 order, so no
    scene is in both sets; with a single scene, ``fraction`` of its pairs."""
    scenes = sorted(set(pair_scenes))
    if len(scenes) >= 2:
        ranked = sorted(scenes, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
        k = min(len(scenes) - 1, max(1, round(fraction * len(scenes))))
        held = set(ranked[:k])
        val_idx = [i for i, s in enumerate(pair_scenes) if s in held]
    else:
        perm = torch.randperm(len(pair_scenes), generator=_generator(seed, -2)).tolist()
        val_idx = sorted(perm[:max(1, round(fraction * len(pair_scenes)))])
    keep = sorted(set(range(len(pair_scenes))) - set(val_idx))
    if not keep:
        raise DataError("too few training pairs to hold out a validation set (use --val-fraction 0)")
    return data.subset(keep), data.subset(val_idx)


def _split_data(dataset_dir: Path, split: str) -> tuple[TrainData, list[str]]:
    from cdbench.data.dataset import image_pairs, open_split

    ds = open_split(dataset_dir, "scores", split)
    if "score" not in ds.column_names:
        raise DataError(f"{dataset_dir}: split {split!r} of config 'scores' has no 'score' column")
    scores = np.asarray(ds["score"], dtype=np.float64)
    keep = np.flatnonzero(np.isfinite(scores))
    if keep.size == 0:
        raise DataError(f"{dataset_dir}: split {split!r} has no scored pairs (hidden labels?)")
    pairs = image_pairs(dataset_dir, ds)
    scenes = list(ds["scene"]) if "scene" in ds.column_names else [scene_of(n) for n in ds["image1_file"]]
    return TrainData([pairs[i] for i in keep], scores[keep]), [scenes[i] for i in keep]


def train_from_dataset(dataset_dir: str | os.PathLike, out_dir: str | os.PathLike, cfg: TrainConfig | None = None,
                       *, split: str = "train", val_split: str | None = None, val_fraction: float = 0.1,
                       overwrite: bool = False, stop_after: int | None = None) -> TrainResult:
    """Train on a built dataset folder's ``scores`` config.

    Validation: ``val_split`` when given (``"validation"`` is used automatically when the folder has
    it), else ``val_fraction`` of the training scenes held out (0: no validation, the last epoch is
    kept).
    """
    from cdbench.data.dataset import read_build_record

    cfg = cfg or TrainConfig()
    if not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    root = Path(dataset_dir)
    record = read_build_record(root)
    splits = record["configs"].get("scores", {}).get("splits", {})
    if val_split is None and "validation" in splits:
        val_split = "validation"
    train, scenes = _split_data(root, split)
    source = {"dataset": str(root), "dataset_name": record.get("name"), "split": split,
              "label_fingerprint": record.get("label_fingerprint")}
    if val_split is not None:
        val, _ = _split_data(root, val_split)
        source["validation"] = val_split
    elif val_fraction > 0:
        n_scenes = len(set(scenes))
        train, val = _split_by_scene(train, scenes, val_fraction, cfg.seed)
        source["validation"] = (f"{len(val)} {split} pairs of {val_fraction:g} of the {n_scenes} scenes held out"
                                if n_scenes > 1 else f"{len(val)} {split} pairs held out (one scene)")
    else:
        val = None
    return train_cdnet(train, val, out_dir, cfg, overwrite=overwrite, source=source, stop_after=stop_after)


def config_from_options(**options: Any) -> TrainConfig:
    """A :class:`TrainConfig` from keyword options, ignoring ``None`` values (CLI defaults)."""
    names = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ModelError(f"unknown training option(s): {', '.join(unknown)}")
    return TrainConfig(**{k: v for k, v in options.items() if v is not None})
