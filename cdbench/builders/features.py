"""Column schemas (``datasets.Features``) of the built configs ``scores`` and ``descriptions``.

With images, the parquet files hold ``image1_file_name`` / ``image2_file_name`` (``images/<name>``)
right after ``pair_id``; the ``imagefolder`` loader of ``datasets`` turns them into the lazily
decoded ``Image`` columns ``image1`` / ``image2`` (see :mod:`cdbench.data.dataset`).
"""

from __future__ import annotations

from typing import Any

from cdbench.data.attributes import ATTRIBUTES, SEVERITIES
from cdbench.data.dataset import IMAGE_FILE_NAME_COLUMNS
from cdbench.data.levels import LEVELS

SCORE_COLUMNS: tuple[str, ...] = (
    "pair_id", "image1_file", "image2_file", "scene", "aligned", "score", "level", "level_value", "question",
    "scene_fold", "competition_split", "released_level", "released_level_by_alignment",
)
DESCRIPTION_COLUMNS: tuple[str, ...] = (
    "pair_id", "image1_file", "image2_file", "scene", "aligned", "instruction", "reference", *ATTRIBUTES,
    "scene_fold", "competition_split",
)


def _with_images(columns: dict[str, Any], with_images: bool) -> dict[str, Any]:
    import datasets

    if not with_images:
        return columns
    out = {"pair_id": columns.pop("pair_id")}
    for c in IMAGE_FILE_NAME_COLUMNS:
        out[c] = datasets.Value("string")
    out.update(columns)
    return out


def scores_features(with_images: bool = True) -> Any:
    """Features of the ``scores`` config: a hidden score is None in score / level / level_value."""
    import datasets

    levels = datasets.ClassLabel(names=list(LEVELS))
    cols = {
        "pair_id": datasets.Value("string"),
        "image1_file": datasets.Value("string"),
        "image2_file": datasets.Value("string"),
        "scene": datasets.Value("string"),
        "aligned": datasets.Value("bool"),
        "score": datasets.Value("float32"),
        "level": levels,
        "level_value": datasets.Value("float32"),
        "question": datasets.Value("string"),
        "scene_fold": datasets.Value("int8"),
        "competition_split": datasets.Value("string"),
        "released_level": levels,
        "released_level_by_alignment": levels,
    }
    assert tuple(cols) == SCORE_COLUMNS
    return datasets.Features(_with_images(cols, with_images))


def descriptions_features(with_images: bool = True) -> Any:
    """Features of the ``descriptions`` config: one ClassLabel (slight/moderate/severe) per attribute,
    parsed from the reference description by :func:`cdbench.data.parse_description`."""
    import datasets

    cols: dict[str, Any] = {
        "pair_id": datasets.Value("string"),
        "image1_file": datasets.Value("string"),
        "image2_file": datasets.Value("string"),
        "scene": datasets.Value("string"),
        "aligned": datasets.Value("bool"),
        "instruction": datasets.Value("string"),
        "reference": datasets.Value("string"),
    }
    for a in ATTRIBUTES:
        cols[a] = datasets.ClassLabel(names=list(SEVERITIES))
    cols["scene_fold"] = datasets.Value("int8")
    cols["competition_split"] = datasets.Value("string")
    assert tuple(cols) == DESCRIPTION_COLUMNS
    return datasets.Features(_with_images(cols, with_images))


def features_for(config: str, with_images: bool) -> Any:
    if config == "scores":
        return scores_features(with_images)
    if config == "descriptions":
        return descriptions_features(with_images)
    raise ValueError(f"unknown config {config!r}")
