"""Pair identity: stable pair ids, scenes, alignment and scene folds of SPCD-style image names.

SPCD (Wang et al., TPAMI 2023) names images ``I{scene:04d}_{source:02d}_{index:02d}.png``.
Source ``01`` holds the six smartphones' own captures; sources ``02``..``07`` are edits of a capture.
A pair of two source-01 images is *not aligned* (different cameras, spatial misalignment); every
other pair is aligned. This module is the one implementation of these rules.
"""

from __future__ import annotations

import hashlib
import re

N_SCENE_FOLDS = 5
SCENE_FOLD_SEED = 0
_SPCD_NAME = re.compile(r"^I(\d{4})_(\d{2})_(\d{2})$")


def image_stem(name: str) -> str:
    """File name without folders and extension, for POSIX and Windows style names."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    dot = base.rfind(".")
    return base[:dot] if dot > 0 else base


def pair_id(image1: str, image2: str) -> str:
    """Stable pair id ``"<stem of image1>+<stem of image2>"`` (released order kept)."""
    return f"{image_stem(image1)}+{image_stem(image2)}"


def parse_spcd_name(name: str) -> tuple[str, int, int]:
    """``(scene, source, index)`` of an SPCD image name, e.g. ``('I0249', 1, 3)``."""
    m = _SPCD_NAME.match(image_stem(name))
    if m is None:
        raise ValueError(f"{name!r} is not an SPCD image name (I<scene>_<source>_<index>.png)")
    return f"I{m.group(1)}", int(m.group(2)), int(m.group(3))


def is_spcd_name(name: str) -> bool:
    """Whether a name follows the SPCD naming scheme."""
    return _SPCD_NAME.match(image_stem(name)) is not None


def scene_of(name: str) -> str:
    """Scene of an image: ``I0249`` for SPCD names, else the stem up to its first underscore."""
    if is_spcd_name(name):
        return parse_spcd_name(name)[0]
    return image_stem(name).split("_")[0]


def is_aligned(image1: str, image2: str) -> bool:
    """SPCD alignment rule: not aligned only when both images are source-01 captures."""
    _, s1, _ = parse_spcd_name(image1)
    _, s2, _ = parse_spcd_name(image2)
    return not (s1 == 1 and s2 == 1)


def scene_fold(scene: str, n_folds: int = N_SCENE_FOLDS, seed: int = SCENE_FOLD_SEED) -> int:
    """Fold 0..n_folds-1 of a scene from a seeded SHA-256 hash: all pairs of a scene share a fold,
    and the assignment is the same on every machine and Python version."""
    digest = hashlib.sha256(f"{seed}:{scene}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_folds
