"""Image loading: the one implementation every model uses to turn an image into pixels.

``load_image`` accepts a path, a PIL image, a numpy array or a torch tensor and returns an
(H, W, 3) uint8 or float32 numpy array. ``load_pairs`` decodes each unique image of a batch of
pairs once, in parallel threads (SPCD reuses every image in about four pairs).

PNG decoding uses kornia-rs when it is installed (about 3x faster than Pillow on SPCD photos,
identical pixels), with Pillow as the fallback for every other case (JPEG, palette, 16-bit, ...).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from cdbench.errors import DataError

try:  # optional fast PNG decoder
    import kornia_rs as _krs
except ImportError:  # pragma: no cover - depends on the install
    _krs = None


def decode_image_file(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB; a clear error naming a missing/corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    if _krs is not None and path.suffix.lower() == ".png":
        try:
            arr = np.asarray(_krs.read_image_png_u8(str(path), "rgb"))
            if arr.ndim == 3 and arr.shape[2] == 3:
                return arr
        except Exception:  # noqa: BLE001 - fall back to Pillow for what kornia-rs cannot read
            pass
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"{path}: cannot decode image ({e})") from None


def load_image(image: Any) -> np.ndarray:
    """Pixels of one image as an (H, W, 3) array: uint8 as decoded, float arrays kept in [0, 1]."""
    if isinstance(image, (str, os.PathLike)):
        return decode_image_file(image)
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL image
        return np.asarray(image.convert("RGB"))
    if hasattr(image, "detach"):  # torch tensor
        image = image.detach().cpu().numpy()
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise DataError(f"an image array must have shape (H, W, 3), got {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32, copy=False)
    raise DataError(f"an image array must be uint8 or float in [0, 1], got dtype {arr.dtype}")


def _key(image: Any):
    if isinstance(image, (str, os.PathLike)):
        return ("path", os.fspath(image))
    return ("obj", id(image))


def load_pairs(pairs: Sequence[tuple[Any, Any]], workers: int | None = None
               ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Decode the images of ``pairs``, each unique image once, in ``workers`` threads."""
    uniq: dict[Any, Any] = {}
    for a, b in pairs:
        uniq.setdefault(_key(a), a)
        uniq.setdefault(_key(b), b)
    keys = list(uniq)
    workers = workers or min(len(keys), os.cpu_count() or 1) or 1
    if workers > 1 and len(keys) > 1:
        with ThreadPoolExecutor(workers) as ex:
            arrays = list(ex.map(load_image, (uniq[k] for k in keys)))
    else:
        arrays = [load_image(uniq[k]) for k in keys]
    decoded = dict(zip(keys, arrays))
    return [(decoded[_key(a)], decoded[_key(b)]) for a, b in pairs]
