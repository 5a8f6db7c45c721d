"""The mPLUG-Owl2 image preprocessing: CLIP resize / centre-crop / normalise from ``preprocessor_config.json``.

Numerically the ``CLIPImageProcessor`` (slow, PIL) of transformers 4.36 the released code uses:
resize the shorter edge to ``size`` with PIL bicubic on uint8 pixels (the longer edge to
``int(size * long / short)``), centre-crop ``crop_size`` (offsets ``(h - c) // 2``), then
``(x * (1/255) - mean) / std`` in float32 (one 256-entry table per channel, so the result is exact).

Before that, as ``mm_utils.process_images`` does with the model config's ``image_aspect_ratio``:
``"pad"`` (Q-Align) pads the image to a square with the CLIP mean colour (``expand2square``),
``"resize"`` stretches it to a square of its longer edge, anything else leaves it as is (CD-Reasoning).

Batched: the per-image resizes run in threads (PIL releases the GIL); the output is one
(N, 3, S, S) float32 tensor.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from cdbench.data.images import load_image
from cdbench.errors import ModelError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _edge(value: Any, key: str) -> int:
    if isinstance(value, dict):
        for k in (key, "shortest_edge", "height"):
            if k in value:
                return int(value[k])
        raise ModelError(f"preprocessor_config.json: cannot read a size from {value!r}")
    return int(value)


def expand2square(image, background: tuple[int, int, int]):
    """Pad a PIL image to a square with ``background``, the image centred (``mm_utils.expand2square``)."""
    from PIL import Image

    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    out = Image.new(image.mode, (side, side), background)
    out.paste(image, ((side - w) // 2, (side - h) // 2))
    return out


class MPLUGOwl2ImageProcessor:
    """Images (paths, PIL, uint8 / [0, 1] float arrays, tensors) -> ``pixel_values`` (N, 3, S, S) float32."""

    def __init__(self, size: int = 448, crop_size: int | None = None, image_mean: Sequence[float] = CLIP_MEAN,
                 image_std: Sequence[float] = CLIP_STD, resample: int = 3, do_resize: bool = True,
                 do_center_crop: bool = True, do_normalize: bool = True, do_rescale: bool = True,
                 rescale_factor: float = 1 / 255, image_aspect_ratio: str | None = None, workers: int | None = None):
        self.size = int(size)
        self.crop_size = int(crop_size if crop_size is not None else size)
        self.image_mean = tuple(float(x) for x in image_mean)
        self.image_std = tuple(float(x) for x in image_std)
        self.resample = int(resample)
        self.do_resize, self.do_center_crop = do_resize, do_center_crop
        self.do_normalize, self.do_rescale = do_normalize, do_rescale
        self.rescale_factor = float(rescale_factor)
        self.image_aspect_ratio = image_aspect_ratio
        self.workers = workers or min(8, os.cpu_count() or 1)
        self._table = self._value_table()

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, image_aspect_ratio: str | None = "config",
                        **overrides) -> MPLUGOwl2ImageProcessor:
        """Read ``preprocessor_config.json`` of a checkpoint folder.

        ``image_aspect_ratio="config"`` takes it from the folder's ``config.json`` (Q-Align releases say
        ``"pad"``; absent means no padding); pass ``"pad"``, ``"resize"`` or ``None`` to choose.
        """
        folder = Path(folder)
        path = folder / "preprocessor_config.json"
        try:
            cfg = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelError(f"{path}: missing (an mPLUG-Owl2 folder needs its preprocessor_config.json)") from None
        except json.JSONDecodeError as e:
            raise ModelError(f"{path}: not valid JSON ({e})") from None
        if image_aspect_ratio == "config":
            try:
                image_aspect_ratio = json.loads((folder / "config.json").read_text()).get("image_aspect_ratio")
            except (FileNotFoundError, json.JSONDecodeError):
                image_aspect_ratio = None
        kwargs = {
            "size": _edge(cfg.get("size", 448), "shortest_edge"),
            "crop_size": _edge(cfg.get("crop_size", cfg.get("size", 448)), "height"),
            "image_mean": cfg.get("image_mean", CLIP_MEAN),
            "image_std": cfg.get("image_std", CLIP_STD),
            "resample": cfg.get("resample", 3),
            "do_resize": cfg.get("do_resize", True),
            "do_center_crop": cfg.get("do_center_crop", True),
            "do_normalize": cfg.get("do_normalize", True),
            "do_rescale": cfg.get("do_rescale", True),
            "rescale_factor": cfg.get("rescale_factor", 1 / 255),
            "image_aspect_ratio": image_aspect_ratio,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def settings(self) -> dict[str, Any]:
        return {"size": self.size, "crop_size": self.crop_size, "image_mean": list(self.image_mean),
                "image_std": list(self.image_std), "resample": self.resample,
                "image_aspect_ratio": self.image_aspect_ratio}

    def _value_table(self) -> np.ndarray:
        """(3, 256) float32: the processed value of each uint8 level per channel, computed as CLIP does."""
        levels = np.arange(256, dtype=np.uint8)[:, None].repeat(3, 1)  # (256, 3)
        x = levels.astype(np.float32)
        if self.do_rescale:
            x = (levels * self.rescale_factor).astype(np.float32)  # float64 product, then float32, as 4.36
        if self.do_normalize:
            x = (x - np.array(self.image_mean, dtype=np.float32)) / np.array(self.image_std, dtype=np.float32)
        return np.ascontiguousarray(x.T.astype(np.float32))

    def _to_pil(self, image):
        from PIL import Image

        if isinstance(image, Image.Image):
            return image.convert("RGB")
        arr = load_image(image)
        if arr.dtype != np.uint8:  # float in [0, 1], as to_pil_image rescales it
            arr = (np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(arr))

    def _resize_crop(self, image) -> np.ndarray:
        from PIL import Image

        img = self._to_pil(image)
        if self.image_aspect_ratio == "pad":
            img = expand2square(img, tuple(int(x * 255) for x in self.image_mean))
        elif self.image_aspect_ratio == "resize":
            edge = max(img.size)
            img = img.resize((edge, edge))
        if self.do_resize:
            w, h = img.size
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = self.size, int(self.size * long / short)
            new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
            if (new_w, new_h) != (w, h):
                img = img.resize((new_w, new_h), resample=Image.Resampling(self.resample))
        arr = np.asarray(img)
        if self.do_center_crop:
            c = self.crop_size
            h, w = arr.shape[:2]
            if h < c or w < c:
                pad = np.zeros((max(h, c), max(w, c), 3), dtype=arr.dtype)
                top, left = (pad.shape[0] - h) // 2, (pad.shape[1] - w) // 2
                pad[top:top + h, left:left + w] = arr
                arr, h, w = pad, pad.shape[0], pad.shape[1]
            top, left = (h - c) // 2, (w - c) // 2
            arr = arr[top:top + c, left:left + c]
        return arr

    def __call__(self, images, return_tensors: str = "pt"):
        """``pixel_values`` (N, 3, S, S) float32 (a torch tensor, or numpy with ``return_tensors="np"``)."""
        if getattr(images, "ndim", None) == 4:  # a (N, H, W, 3) array / tensor batch
            images = list(images)
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        if not items:
            raise ModelError("no images to preprocess")
        if len(items) > 1 and self.workers > 1:
            with ThreadPoolExecutor(min(self.workers, len(items))) as pool:
                crops = list(pool.map(self._resize_crop, items))
        else:
            crops = [self._resize_crop(x) for x in items]
        shapes = {c.shape for c in crops}
        if len(shapes) != 1:
            raise ModelError(f"images of different sizes after preprocessing: {sorted(shapes)} (enable center crop)")
        batch = np.stack(crops)  # (N, S, S, 3) uint8
        out = np.empty((batch.shape[0], 3, *batch.shape[1:3]), dtype=np.float32)
        for ch in range(3):
            out[:, ch] = self._table[ch][batch[..., ch]]
        if return_tensors == "np":
            return out
        import torch

        return torch.from_numpy(out)

    preprocess = __call__
