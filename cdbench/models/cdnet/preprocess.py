"""CD-Net input preparation: the public code's resizing rules, and arrays to tensors.

Reference: Wang et al., "Measuring Perceptual Color Differences of Smartphone Photographs",
IEEE TPAMI 2023, public code (``image_loader`` and ``AdaptiveResize(1024)``):

1. an image with a side < 384 is upsized, bicubic, so that its *shorter* side is 384
   (the longer side becomes ``int(384 * long / short)``); this rule applies in training too;
2. at evaluation, an image whose both sides are >= 1024 is resized, bilinear, so that its shorter
   side is 1024 (longer side ``int(1024 * long / short)``); a 1024-pixel shorter side is kept as is.

Resizing is done by Pillow, as in the public code: on the uint8 pixels for uint8 input (so the
pixels are exactly the reference's), per channel in float32 ("F" mode, clipped to [0, 1]) for float input.
"""

from __future__ import annotations

import numpy as np
import torch

MIN_SIDE = 384
EVAL_SIDE = 1024


def _resize(img: np.ndarray, size_wh: tuple[int, int], resample: int) -> np.ndarray:
    from PIL import Image

    if img.dtype == np.uint8:
        return np.asarray(Image.fromarray(img).resize(size_wh, resample))
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c], dtype=np.float32), mode="F")
                         .resize(size_wh, resample)) for c in range(img.shape[2])]
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0)  # bicubic overshoot: keep the [0, 1] range


def _short_side_to(img: np.ndarray, side: int, resample: int) -> np.ndarray:
    h, w = img.shape[:2]
    if w <= h:
        size = (side, int(side * h / w))
    else:
        size = (int(side * w / h), side)
    if size == (w, h):
        return img
    return _resize(img, size, resample)


def upsize_small(img: np.ndarray) -> np.ndarray:
    """Rule 1: a side < 384 -> shorter side 384, bicubic (training and evaluation)."""
    from PIL import Image

    h, w = img.shape[:2]
    if min(h, w) >= MIN_SIDE:
        return img
    return _short_side_to(img, MIN_SIDE, Image.BICUBIC)


def eval_resize(img: np.ndarray, resize: bool = True) -> np.ndarray:
    """Rules 1 and 2 (evaluation): upsize small images, bring large ones to a 1024 shorter side.

    ``resize=False`` keeps the native resolution (no rule applied): local CD maps at full size,
    or images already prepared by the caller.
    """
    from PIL import Image

    if not resize:
        return img
    img = upsize_small(img)
    h, w = img.shape[:2]
    if h >= EVAL_SIDE and w >= EVAL_SIDE:
        img = _short_side_to(img, EVAL_SIDE, Image.BILINEAR)
    return img


def check_pair(a: np.ndarray, b: np.ndarray, label: str) -> None:
    """CD-Net compares two images of the same size, each large enough for its dilated convolution
    (``network.MIN_SIDE`` pixels a side, after the resizing rules); a one-line
    :class:`~cdbench.errors.DataError` naming ``label`` otherwise."""
    from cdbench.errors import DataError
    from cdbench.models.cdnet.network import MIN_SIDE as NETWORK_MIN_SIDE

    if a.shape != b.shape:
        raise DataError(f"{label}: the two images differ in size ({a.shape[1]}x{a.shape[0]} and "
                        f"{b.shape[1]}x{b.shape[0]}); CD-Net compares images of the same size")
    if min(a.shape[:2]) < NETWORK_MIN_SIDE:
        raise DataError(f"{label}: images of {a.shape[1]}x{a.shape[0]} are too small for CD-Net "
                        f"(at least {NETWORK_MIN_SIDE}x{NETWORK_MIN_SIDE})")


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 or float [0, 1] -> (3, H, W) float32 in [0, 1] (uint8 divided by 255)."""
    t = torch.from_numpy(np.ascontiguousarray(img) if img.flags.writeable else np.array(img))
    t = t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()
    return t.permute(2, 0, 1)
