"""The one model interface of cdbench.

Every colour-difference model (classic formulas, CD-Net, multimodal LLMs) implements
:class:`CDModel`: ``score(pairs)`` returns one float per pair and, where the model can talk,
``describe(pairs)`` returns one description per pair. ``evaluate``, ``reproduce`` and the
leaderboard never branch on the model kind.

A *pair* is a 2-tuple of images; an image is a path (``str``/``Path``), a PIL image, a
``numpy`` array (H, W, 3) uint8 or float in [0, 1], or a ``torch`` tensor of the same layout.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from os import PathLike
from typing import Any, Literal, Union

import numpy as np

ImageLike = Union[str, PathLike, "np.ndarray", Any]
Pair = tuple[ImageLike, ImageLike]

ScoreScale = Literal["difference", "level"]
"""``difference``: larger = more different, in the model's own unit (Delta E, CD-Net output).
``level``: the M-SPCD level scale 0..5 (:mod:`cdbench.data.levels`), which evaluators map to the
human score scale with :func:`cdbench.data.level_value_to_score` where a metric needs it."""


class CDModel(abc.ABC):
    """A colour-difference model: ``score(pairs) -> float array`` and optionally ``describe``."""

    name: str = "model"
    kind: Literal["formula", "learned", "mllm", "other"] = "other"
    scale: ScoreScale = "difference"
    can_describe: bool = False
    preferred_chunk: int = 64
    """Pairs the evaluation runner hands to one ``score``/``describe`` call (and saves at once):
    large enough for the model to batch and to decode each shared image once, small enough that
    an interruption loses little. Models that batch on an accelerator raise it."""

    @abc.abstractmethod
    def score(self, pairs: Sequence[Pair], *, progress: bool = False) -> np.ndarray:
        """One float64 score per pair (larger = more different)."""

    def describe(self, pairs: Sequence[Pair], *, progress: bool = False) -> list[str]:
        """One free-text description of the colour differences per pair."""
        raise NotImplementedError(f"model {self.name!r} scores pairs but cannot describe them")

    def settings(self) -> dict[str, Any]:
        """Everything that defines this model's outputs, recorded in every results file."""
        return {}

    def info(self) -> dict[str, Any]:
        """Name, kind, scale and settings: the ``model`` block of results and submissions."""
        return {"name": self.name, "kind": self.kind, "scale": self.scale,
                "can_describe": self.can_describe, "settings": self.settings()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
