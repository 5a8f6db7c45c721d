"""The leaderboard submission format: its JSON Schema (draft 2020-12), tasks and limits.

The schema file ships inside the package (``cdbench/leaderboard/submission.schema.json``, so an
installed cdbench finds it); the repository's ``leaderboard/submission.schema.json`` is a symbolic
link to that one file. A submission is what ``cdbench evaluate`` writes as ``submission.json``::

    {"schema_version": 1,
     "model": {"name", "kind": formula|learned|mllm|other, "url", "description", "parameters", ...},
     "dataset": {"name", "config": scores|descriptions, "split", "fingerprint"},
     "predictions": [{"pair_id", "score"}, ...] | [{"pair_id", "text"}, ...]}
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

SCHEMA_VERSION = 1
SCHEMA_FILE = "submission.schema.json"

#: The two tasks of the board, named after the dataset configs they are scored on.
TASKS: tuple[str, ...] = ("scores", "descriptions")
#: The field a prediction carries in each task.
PREDICTION_FIELD: dict[str, str] = {"scores": "score", "descriptions": "text"}
MODEL_KINDS: tuple[str, ...] = ("formula", "learned", "mllm", "other")

#: Limits of the safe parser (:mod:`cdbench.leaderboard.validate`).
MAX_FILE_BYTES = 50 * 1024 * 1024  # a full 30,000-pair description submission is about 15 MB
MAX_DEPTH = 16  # a valid submission nests 4 deep (model.settings may nest a little more)
MAX_PREDICTIONS = 1_000_000
MAX_CONTAINERS = MAX_PREDICTIONS + 10_000  # objects + arrays in the whole document
MAX_INT_DIGITS = 30
MAX_TEXT_CHARS = 10_000
MAX_PROBLEMS = 50  # problems listed before "... and N more"


@lru_cache(maxsize=1)
def _schema_text() -> str:
    return resources.files("cdbench.leaderboard").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def submission_schema() -> dict[str, Any]:
    """The submission JSON Schema as a fresh dict (draft 2020-12)."""
    return json.loads(_schema_text())


@lru_cache(maxsize=1)
def submission_validator():
    """A compiled ``jsonschema.Draft202012Validator`` for :func:`submission_schema`."""
    import jsonschema

    schema = submission_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)
