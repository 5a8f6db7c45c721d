"""The five colour-difference levels and the score <-> level scale of M-SPCD.

Reference: Wang et al., "Harnessing Multi-modal Large Language Models for Measuring and
Interpreting Color Differences", IEEE TIP 2025 (M-SPCD). The released level labels follow

    x = ln((score + 1.2943) / 1.6036) / 0.5391

binned at 1, 2, 3, 4 (negligible < 1 <= slight < 2 <= moderate < 3 <= significant < 4 <= severe).
A model's level probabilities p over the five levels give x = 5 * sum(p_i * w_i) with
w = (0, 0.25, 0.5, 0.75, 1) (Q-Align's weighted level scoring).

This module is the one place of these constants: every stage imports them from here.
"""

from __future__ import annotations

import numpy as np

LEVELS: tuple[str, ...] = ("negligible", "slight", "moderate", "significant", "severe")
"""The five levels, from the smallest colour difference to the largest."""

LEVEL_WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Q-Align weights w_i of the levels; level_value = 5 * sum(p_i * w_i)."""

LEVEL_BINS: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0)
"""Bin edges on the level scale (left-closed: x == 1 is 'slight')."""

SCALE_OFFSET = 1.2943
SCALE_DIVISOR = 1.6036
SCALE_RATE = 0.5391


def score_to_level_value(score):
    """Map a human colour-difference score (Delta V) to the level scale.

    ``x = ln((score + 1.2943) / 1.6036) / 0.5391`` (M-SPCD, TIP 2025). Accepts a float or an
    array; returns the same kind. Scores <= -1.2943 are outside the domain and give NaN.
    """
    s = np.asarray(score, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.log((s + SCALE_OFFSET) / SCALE_DIVISOR) / SCALE_RATE
    x = np.where(s + SCALE_OFFSET > 0, x, np.nan)
    return float(x) if np.ndim(score) == 0 else x


def level_value_to_score(level_value):
    """Inverse of :func:`score_to_level_value`: ``score = 1.6036 * exp(0.5391 * x) - 1.2943``."""
    x = np.asarray(level_value, dtype=np.float64)
    s = SCALE_DIVISOR * np.exp(SCALE_RATE * x) - SCALE_OFFSET
    return float(s) if np.ndim(level_value) == 0 else s


def level_index_of_value(level_value):
    """Level index 0..4 of a level-scale value (bins at 1, 2, 3, 4, left-closed)."""
    x = np.asarray(level_value, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("level value is NaN")
    idx = np.digitize(x, LEVEL_BINS, right=False)
    return int(idx) if np.ndim(level_value) == 0 else idx


def level_index_of_score(score):
    """Level index 0..4 of a human score: the M-SPCD level rule."""
    return level_index_of_value(score_to_level_value(score))


def level_of_score(score: float) -> str:
    """Level name of a human score, e.g. ``level_of_score(4.59) == 'moderate'``."""
    return LEVELS[level_index_of_score(float(score))]


def level_index(name: str) -> int:
    """Index of a level name (case-insensitive); a clear error for anything else."""
    key = name.strip().lower().rstrip(".")
    try:
        return LEVELS.index(key)
    except ValueError:
        raise ValueError(f"unknown level {name!r}; expected one of {', '.join(LEVELS)}") from None


def level_value_from_probs(probs) -> np.ndarray:
    """Q-Align level value ``5 * sum_i p_i * w_i`` from level probabilities (..., 5)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.shape[-1] != len(LEVELS):
        raise ValueError(f"expected {len(LEVELS)} level probabilities in the last axis, got {p.shape}")
    return 5.0 * (p @ np.asarray(LEVEL_WEIGHTS))
