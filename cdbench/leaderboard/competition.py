"""Interop with the SPCD community competition's ``id,score`` CSV files (import and export).

The competition (Kaggle "Visual Color Difference Evaluation", hosted by the SPCD authors, see
https://github.com/hellooks/CDNet) ships ``train_data.csv`` (10,000 pairs, ``image1,image2,score``),
``test_data.csv`` (20,000 pairs, same columns, score empty) and ``sample_submission.csv``.

**What ``id`` is.** The sample submission has a header ``id,score`` and 20,000 rows with ids
1, 2, ..., 20000 in order, one per row of ``test_data.csv``: ``id`` is the **1-based row number of
the pair in the competition's ``test_data.csv``** (header not counted), so id 1 is the pair
``I0276_02_02.png,I0276_04_01.png`` and id 3 is ``I0249_02_01.png,I0249_06_01.png``. (The sample's
scores are placeholders copied from ``train_data.csv``, row for row.) There is no pair name in the
CSV, so converting needs the competition's pair list: the ``test_data.csv`` it was made for
(``../shared/data/spcd/test_data.csv`` is that file). cdbench identifies a pair by
:func:`cdbench.data.pair_id` (``"<stem1>+<stem2>"``); the conversion maps row ``id`` to the pair id
of row ``id`` of the pair list.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cdbench.data import pair_id
from cdbench.errors import DataError
from cdbench.io import atomic_write_text
from cdbench.leaderboard.schema import MAX_FILE_BYTES, SCHEMA_VERSION
from cdbench.leaderboard.validate import read_submission_bytes

COMPETITION_HEADER = ("id", "score")
PAIRS_HEADER = ("image1", "image2")


def _read_text(path: Path) -> str:
    data = read_submission_bytes(path, MAX_FILE_BYTES)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (invalid byte at offset {e.start})") from None


def read_pair_list(path: str | os.PathLike) -> list[str]:
    """The pair ids of a competition pair list (``image1,image2[,score]`` CSV), in row order:
    element ``i`` is the pair of competition ``id`` ``i + 1``."""
    path = Path(path)
    rows = list(csv.reader(io.StringIO(_read_text(path))))
    if not rows or [c.strip() for c in rows[0][:2]] != list(PAIRS_HEADER):
        raise DataError(f"{path}: not a competition pair list (expected a header starting with image1,image2)")
    out, seen = [], {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise DataError(f"{path}: line {line}: expected image1,image2")
        pid = pair_id(row[0].strip(), row[1].strip())
        if pid in seen:
            raise DataError(f"{path}: line {line}: pair {pid} repeats line {seen[pid]}")
        seen[pid] = line
        out.append(pid)
    if not out:
        raise DataError(f"{path}: no pairs")
    return out


def import_competition_csv(csv_path: str | os.PathLike, pairs_path: str | os.PathLike, model: Mapping[str, Any],
                           dataset: Mapping[str, Any] | None = None) -> dict:
    """A leaderboard submission (scores task) from a competition ``id,score`` CSV.

    ``pairs_path`` is the competition's ``test_data.csv`` the ids refer to; ``model`` is the
    submission's model block (at least ``name``); ``dataset`` defaults to SPCD's test split.
    Every id of the pair list must appear exactly once with a finite score; problems name the line.
    """
    csv_path = Path(csv_path)
    pairs = read_pair_list(pairs_path)
    rows = list(csv.reader(io.StringIO(_read_text(csv_path))))
    if not rows or [c.strip().lower() for c in rows[0]] != list(COMPETITION_HEADER):
        raise DataError(f"{csv_path}: line 1: expected the header 'id,score'")
    scores: dict[int, float] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != 2:
            raise DataError(f"{csv_path}: line {line}: expected 2 columns (id,score), got {len(row)}")
        raw_id, raw_score = row[0].strip(), row[1].strip()
        if not raw_id.isdigit() or not (1 <= int(raw_id) <= len(pairs)):
            raise DataError(f"{csv_path}: line {line}: id {raw_id[:20]!r} is not a row of {Path(pairs_path).name} "
                            f"(1..{len(pairs)})")
        try:
            value = float(raw_score)
        except ValueError:
            raise DataError(f"{csv_path}: line {line}: score {raw_score[:20]!r} is not a number") from None
        if not math.isfinite(value):
            raise DataError(f"{csv_path}: line {line}: score {raw_score[:20]!r} is not a finite number")
        if int(raw_id) in scores:
            raise DataError(f"{csv_path}: line {line}: id {int(raw_id)} appears twice")
        scores[int(raw_id)] = value
    missing = [i for i in range(1, len(pairs) + 1) if i not in scores]
    if missing:
        raise DataError(f"{csv_path}: {len(missing)} of the {len(pairs)} ids have no score (first: "
                        f"{', '.join(map(str, missing[:5]))})")
    ds = {"name": "spcd", "config": "scores", "split": "test", **(dataset or {})}
    return {"schema_version": SCHEMA_VERSION, "model": dict(model), "dataset": ds,
            "predictions": [{"pair_id": pairs[i - 1], "score": scores[i]} for i in range(1, len(pairs) + 1)]}


def export_competition_csv(submission: Mapping[str, Any], pairs_path: str | os.PathLike,
                           out_path: str | os.PathLike) -> int:
    """Write a scores submission as a competition ``id,score`` CSV (atomically); returns the row
    count. Every pair of the competition's pair list needs a prediction; extra predictions (e.g.
    the training pairs of a whole-SPCD submission) are left out."""
    if submission.get("dataset", {}).get("config") != "scores":
        raise DataError("only a scores submission (dataset.config 'scores') converts to the competition CSV")
    pairs = read_pair_list(pairs_path)
    by_id = {p["pair_id"]: p["score"] for p in submission["predictions"]}
    missing = [p for p in pairs if p not in by_id]
    if missing:
        raise DataError(f"{len(missing)} of the {len(pairs)} pairs of {Path(pairs_path).name} have no prediction "
                        f"in the submission (first: {', '.join(missing[:3])})")
    lines = ["id,score"] + [f"{i},{float(by_id[p])!r}" for i, p in enumerate(pairs, start=1)]
    atomic_write_text(out_path, "\n".join(lines) + "\n")
    return len(pairs)
