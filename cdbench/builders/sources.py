"""Reading and validating the released SPCD / M-SPCD annotation files.

Every bad input is a one-line :class:`~cdbench.errors.DataError` naming the file and the row
(1-based data row for CSVs, 1-based item for JSON lists): a non-finite score, a duplicate pair,
an unknown JSON layout, an image name that is absolute, leaves the image root or is not an SPCD
name. Input files are only read.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath, PureWindowsPath

from cdbench.data.levels import level_index
from cdbench.data.pairs import is_spcd_name
from cdbench.errors import DataError

_ANSWER_RE = re.compile(r"^\s*the colou?r difference between (?:these|the) two images is\s+([a-z]+)\s*\.?\s*$",
                        re.IGNORECASE)
_IMAGE_TAGS = re.compile(r"^(?:\s*<image>\s*)+")


@dataclass
class ScoreRow:
    """One scored pair as released (score None = hidden)."""

    image1: str
    image2: str
    score: float | None
    source: str  # "file:row" for messages and the card
    question: str = ""
    released_level: int | None = None
    item_id: str | None = None


@dataclass
class DescriptionRow:
    """One described pair as released."""

    image1: str
    image2: str
    instruction: str
    reference: str
    source: str
    item_id: str | None = None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def check_image_name(name: object, where: str) -> str:
    """A released image name: a relative file name inside the image root, SPCD-style."""
    if not isinstance(name, str):
        raise DataError(f"{where}: image name must be a non-empty string, got {name!r}")
    problem = _image_name_problem(name)
    if problem:
        raise DataError(f"{where}: {problem}")
    return name.replace("\\", "/")


@lru_cache(maxsize=1 << 16)
def _image_name_problem(name: str) -> str | None:
    """Why ``name`` is not an acceptable image name (None if it is); cached per name (SPCD reuses
    every image in about four pairs)."""
    if not name.strip():
        return f"image name must be a non-empty string, got {name!r}"
    if "\x00" in name or PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() \
            or PureWindowsPath(name).drive:
        return f"image name {name!r} is absolute; names must be relative to the image folder"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return f"image name {name!r} leaves the image folder ('..')"
    if not is_spcd_name(name):
        return f"image name {name!r} is not an SPCD name (I<scene>_<source>_<index>.png)"
    return None


def _check_score(value: object, where: str) -> float:
    try:
        s = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{where}: score {value!r} is not a number") from None
    if not math.isfinite(s):
        raise DataError(f"{where}: score {value!r} is not finite")
    return s


class PairRegistry:
    """Rejects a pair seen before (also in reversed order), naming both places."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], str] = {}

    def add(self, image1: str, image2: str, where: str) -> None:
        key = (image1, image2)
        first = self._seen.get(key)
        if first is None:
            first = self._seen.get((image2, image1))
            if first is not None:
                raise DataError(f"{where}: duplicate pair {image1}, {image2} (reversed order of {first})")
        if first is not None:
            raise DataError(f"{where}: duplicate pair {image1}, {image2} (also at {first})")
        self._seen[key] = where


def read_score_csv(path: str | Path, pairs: PairRegistry | None = None) -> list[ScoreRow]:
    """Rows of an SPCD score CSV (``image1,image2,score``; an empty score is a hidden label)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: score file not found")
    pairs = pairs if pairs is not None else PairRegistry()
    rows: list[ScoreRow] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:3]] != ["image1", "image2", "score"]:
            raise DataError(f"{path}: expected the header 'image1,image2,score', got {header!r}")
        for i, rec in enumerate(reader, start=1):
            where = f"{path}:row {i}"
            if not rec or all(not c.strip() for c in rec):
                continue
            if len(rec) != 3:
                raise DataError(f"{where}: expected 3 fields image1,image2,score, got {len(rec)}")
            a = check_image_name(rec[0].strip(), where)
            b = check_image_name(rec[1].strip(), where)
            raw = rec[2].strip()
            score = _check_score(raw, where) if raw else None
            pairs.add(a, b, where)
            rows.append(ScoreRow(a, b, score, where))
    return rows


def _load_json_list(path: Path, what: str) -> list:
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: unknown JSON layout: expected a list of items, got {type(data).__name__}")
    return data


def _image_pair(item: dict, where: str) -> tuple[str, str]:
    imgs = item.get("image")
    if not isinstance(imgs, list) or len(imgs) != 2:
        raise DataError(f"{where}: unknown JSON layout: 'image' must be a list of two image names")
    return check_image_name(imgs[0], where), check_image_name(imgs[1], where)


def _conversation(item: dict, where: str) -> tuple[str, str]:
    conv = item.get("conversations")
    if (not isinstance(conv, list) or len(conv) != 2 or not all(isinstance(c, dict) for c in conv)
            or conv[0].get("from") != "human" or conv[1].get("from") != "gpt"
            or not isinstance(conv[0].get("value"), str) or not isinstance(conv[1].get("value"), str)):
        raise DataError(f"{where}: unknown JSON layout: 'conversations' must be [human, gpt] turns with text values")
    question = _IMAGE_TAGS.sub("", conv[0]["value"]).strip()
    return question, conv[1]["value"].strip()


def parse_level_answer(answer: str, where: str) -> int:
    """Level index of a released answer 'The color difference between these two images is <Level>.'"""
    m = _ANSWER_RE.match(answer)
    if m is None:
        raise DataError(f"{where}: unknown answer {answer[:80]!r} (expected 'The color difference between these "
                        "two images is <level>.')")
    try:
        return level_index(m.group(1))
    except ValueError as e:
        raise DataError(f"{where}: {e}") from None


def is_level_answer(answer: str) -> bool:
    return _ANSWER_RE.match(answer) is not None


def read_score_json(path: str | Path, pairs: PairRegistry | None = None) -> list[ScoreRow]:
    """Items of an M-SPCD score file: ``{"id", "image": [a, b], "conversations": [human, gpt],
    "gt_score"}``; the gpt turn names the released level."""
    path = Path(path)
    pairs = pairs if pairs is not None else PairRegistry()
    rows = []
    for i, item in enumerate(_load_json_list(path, "score annotation"), start=1):
        where = f"{path}:item {i}"
        if not isinstance(item, dict) or "gt_score" not in item:
            raise DataError(f"{where}: unknown JSON layout: a score item needs 'image', 'conversations', 'gt_score'")
        a, b = _image_pair(item, where)
        question, answer = _conversation(item, where)
        level = parse_level_answer(answer, where)
        score = _check_score(item["gt_score"], where)
        pairs.add(a, b, where)
        rows.append(ScoreRow(a, b, score, where, question, level, _item_id(item)))
    return rows


def _item_id(item: dict) -> str | None:
    v = item.get("id", item.get("question_id"))
    return None if v is None else str(v)


def read_depict_json(path: str | Path, pairs: PairRegistry | None = None) -> list[DescriptionRow]:
    """Items of an M-SPCD description file: ``{"question_id", "image": [a, b], "text", "human_answer"}``."""
    path = Path(path)
    pairs = pairs if pairs is not None else PairRegistry()
    rows = []
    for i, item in enumerate(_load_json_list(path, "description annotation"), start=1):
        where = f"{path}:item {i}"
        if not isinstance(item, dict) or not isinstance(item.get("text"), str) \
                or not isinstance(item.get("human_answer"), str):
            raise DataError(f"{where}: unknown JSON layout: a description item needs 'image', 'text', 'human_answer'")
        a, b = _image_pair(item, where)
        pairs.add(a, b, where)
        rows.append(DescriptionRow(a, b, item["text"].strip(), item["human_answer"].strip(), where, _item_id(item)))
    return rows


def read_train_json(path: str | Path, score_pairs: PairRegistry, description_pairs: PairRegistry
                    ) -> tuple[list[ScoreRow], list[DescriptionRow]]:
    """Items of an M-SPCD training file: conversation items, score items (with ``gt_score`` and a
    level answer) and description items (an instruction and a free-text answer) mixed."""
    path = Path(path)
    scores: list[ScoreRow] = []
    descriptions: list[DescriptionRow] = []
    for i, item in enumerate(_load_json_list(path, "training annotation"), start=1):
        where = f"{path}:item {i}"
        if not isinstance(item, dict):
            raise DataError(f"{where}: unknown JSON layout: expected an object")
        a, b = _image_pair(item, where)
        question, answer = _conversation(item, where)
        if "gt_score" in item or is_level_answer(answer):
            if "gt_score" not in item:
                raise DataError(f"{where}: unknown JSON layout: a score item (level answer) without 'gt_score'")
            level = parse_level_answer(answer, where)
            score = _check_score(item["gt_score"], where)
            score_pairs.add(a, b, where)
            scores.append(ScoreRow(a, b, score, where, question, level, _item_id(item)))
        else:
            if not answer:
                raise DataError(f"{where}: unknown JSON layout: empty answer")
            description_pairs.add(a, b, where)
            descriptions.append(DescriptionRow(a, b, question, answer, where, _item_id(item)))
    return scores, descriptions
