"""The data model shared by every stage: levels, attributes, pair identity, image loading."""

from cdbench.data.attributes import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    SEVERITIES,
    format_description,
    parse_description,
    severity_index,
)
from cdbench.data.levels import (
    LEVEL_BINS,
    LEVEL_WEIGHTS,
    LEVELS,
    level_index,
    level_index_of_score,
    level_index_of_value,
    level_of_score,
    level_value_from_probs,
    level_value_to_score,
    score_to_level_value,
)
from cdbench.data.pairs import (
    N_SCENE_FOLDS,
    image_stem,
    is_aligned,
    is_spcd_name,
    pair_id,
    parse_spcd_name,
    scene_fold,
    scene_of,
)

__all__ = [
    "ATTRIBUTES", "ATTRIBUTE_NAMES", "SEVERITIES", "format_description", "parse_description",
    "severity_index", "LEVELS", "LEVEL_BINS", "LEVEL_WEIGHTS", "level_index", "level_index_of_score",
    "level_index_of_value", "level_of_score", "level_value_from_probs", "level_value_to_score",
    "score_to_level_value", "N_SCENE_FOLDS", "image_stem", "is_aligned", "is_spcd_name", "pair_id",
    "parse_spcd_name", "scene_fold", "scene_of",
]
