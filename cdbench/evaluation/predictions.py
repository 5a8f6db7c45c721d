"""Reading predictions: a ``predictions.jsonl`` (one ``{"pair_id", "score"|"text"}`` per line, as
``cdbench evaluate`` appends them) or a ``submission.json`` (the leaderboard format), into one
``{pair_id: value}`` mapping, with one-line errors naming the file and line / index."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cdbench.errors import DataError
from cdbench.io import read_jsonl

SUBMISSION_SCHEMA_VERSION = 1


def value_key(config: str) -> str:
    """The prediction field of a config: ``score`` for ``scores``, ``text`` for ``descriptions``."""
    if config == "scores":
        return "score"
    if config == "descriptions":
        return "text"
    raise DataError(f"unknown config {config!r}; expected 'scores' or 'descriptions'")


def load_predictions_file(path: str | os.PathLike) -> tuple[list[dict], dict]:
    """The prediction records and the header (``model``, ``dataset``; empty for a JSONL file) of a
    predictions.jsonl or submission.json file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: predictions file not found")
    if path.suffix.lower() == ".jsonl":
        try:
            return read_jsonl(path), {}
        except ValueError as e:
            raise DataError(str(e)) from None
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text") from None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a JSON file ({e})") from None
    if isinstance(obj, list):
        return obj, {}
    if not isinstance(obj, dict) or not isinstance(obj.get("predictions"), list):
        raise DataError(f"{path}: expected a submission object with a 'predictions' list, or a JSONL file")
    if obj.get("schema_version", SUBMISSION_SCHEMA_VERSION) != SUBMISSION_SCHEMA_VERSION:
        raise DataError(f"{path}: submission schema_version {obj.get('schema_version')!r} is not supported "
                        f"(expected {SUBMISSION_SCHEMA_VERSION})")
    header = {k: obj[k] for k in ("model", "dataset") if isinstance(obj.get(k), dict)}
    return obj["predictions"], header


def predictions_mapping(records: Iterable[Mapping[str, Any]] | Mapping[str, Any], config: str,
                        source: str = "predictions") -> dict[str, Any]:
    """``{pair_id: score or text}`` from records ``{"pair_id", "score"|"text"}`` (or a mapping
    already). A record without the field, a non-finite / non-numeric score, an empty text or two
    different values for one pair is a DataError naming ``source`` and the record."""
    key = value_key(config)
    if isinstance(records, Mapping):
        records = [{"pair_id": k, key: v} for k, v in records.items()]
    out: dict[str, Any] = {}
    for i, r in enumerate(records):
        where = f"{source}: record {i + 1}"
        if not isinstance(r, Mapping):
            raise DataError(f"{where}: expected an object, got {type(r).__name__}")
        pid = r.get("pair_id")
        if not isinstance(pid, str) or not pid:
            raise DataError(f"{where}: missing or empty 'pair_id'")
        if key not in r:
            other = "text" if key == "score" else "score"
            hint = f" (it has {other!r}: is this the {'descriptions' if key == 'score' else 'scores'} config?)" \
                if other in r else ""
            raise DataError(f"{where} ({pid}): no {key!r} field{hint}")
        v = r[key]
        if key == "score":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
                raise DataError(f"{where} ({pid}): score must be a finite number, got {v!r}")
            v = float(v)
        elif not isinstance(v, str) or not v.strip():
            raise DataError(f"{where} ({pid}): text must be a non-empty string")
        if pid in out and out[pid] != v:
            raise DataError(f"{where}: pair {pid!r} appears twice with different values")
        out[pid] = v
    return out


def read_predictions(predictions: str | os.PathLike | Mapping | Iterable, config: str
                     ) -> tuple[dict[str, Any], dict]:
    """``({pair_id: value}, header)`` from a file path, a submission dict, a list of records or a
    ``{pair_id: value}`` mapping."""
    if isinstance(predictions, (str, os.PathLike)):
        records, header = load_predictions_file(predictions)
        return predictions_mapping(records, config, str(predictions)), header
    if isinstance(predictions, Mapping) and isinstance(predictions.get("predictions"), list):
        header = {k: predictions[k] for k in ("model", "dataset") if isinstance(predictions.get(k), dict)}
        return predictions_mapping(predictions["predictions"], config, "submission"), header
    return predictions_mapping(predictions, config), {}
