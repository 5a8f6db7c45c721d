"""Safe, bounded reading and validation of leaderboard submissions.

Reading is bounded before anything is parsed: the file size is checked with ``stat`` (50 MB by
default), the bytes must be UTF-8, the number of objects/arrays is counted on the raw bytes, nesting
depth is limited, and numbers that are not finite (``NaN``, ``Infinity``, ``1e999``) or absurdly long
integers are turned into markers at parse time and reported. Nothing in a submission is executed,
evaluated or used as a path. Every problem is one line naming its JSON path, e.g.
``predictions[17].score: not a finite number (NaN)``.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from cdbench.errors import DataError
from cdbench.leaderboard.schema import (
    MAX_CONTAINERS,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_INT_DIGITS,
    MAX_PREDICTIONS,
    MAX_PROBLEMS,
    MAX_TEXT_CHARS,
    PREDICTION_FIELD,
    submission_validator,
)

ROOT = "(top level)"


@dataclass(frozen=True)
class ReferenceSplit:
    """What a submission is checked against: one split of one dataset config.

    ``pair_ids`` are the split's pairs in dataset order; ``fingerprint`` is the dataset's
    fingerprint (``None`` when unknown: then it is not compared).
    """

    name: str
    config: str
    split: str
    pair_ids: Sequence[str]
    fingerprint: str | None = None


@dataclass
class ValidationResult:
    """The outcome of :func:`validate_submission`: ``problems`` (one line each) and the parsed
    submission (``None`` when it could not be parsed)."""

    problems: list[str] = field(default_factory=list)
    submission: dict | None = None
    document: Any = None  # the parsed document, valid or not (None when it could not be parsed)
    more: int = 0  # problems found beyond the MAX_PROBLEMS listed

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """The problems, one line each, with a last line counting those not listed."""
        out = list(self.problems)
        if self.more:
            out.append(f"... and {self.more} more problem{'s' if self.more > 1 else ''}")
        return out

    def raise_for_problems(self, source: str = "submission") -> None:
        """Raise a one-line :class:`DataError` summarising the problems, if any."""
        if self.problems:
            n = len(self.problems) + self.more
            raise DataError(f"{source}: {n} problem{'s' if n > 1 else ''}: {self.problems[0]}"
                            + (" (run `cdbench leaderboard validate` for all)" if n > 1 else ""))


class _BadNumber:
    """Marker for a number that is not finite or too long, kept so its JSON path can be reported."""

    __slots__ = ("text", "why")

    def __init__(self, text: str, why: str | None = None):
        self.text = text
        self.why = why

    def reason(self) -> str:
        return self.why or f"not a finite number ({_short(self.text)})"


class _DuplicateKeys(dict):
    """A JSON object that repeated one of its keys (the repeated keys are kept for reporting)."""

    duplicates: list[str]


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        dups = []
        for k, _ in pairs:
            if k in seen and k not in dups:
                dups.append(k)
            seen.add(k)
        d = _DuplicateKeys(d)
        d.duplicates = dups
    return d


def _parse_float(text: str) -> float | _BadNumber:
    value = float(text)
    return value if math.isfinite(value) else _BadNumber(text)


def _parse_int(text: str) -> int | _BadNumber:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        return _BadNumber(text[:40] + "...", f"integer with more than {MAX_INT_DIGITS} digits")
    return int(text)


def _short(value: Any, limit: int = 60) -> str:
    """A one-line, bounded rendering of a value from a submission (control characters escaped)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str) \
        if not isinstance(value, _BadNumber) else value.text
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_path(parts: Iterable[str | int]) -> str:
    """``("predictions", 17, "score")`` -> ``predictions[17].score`` (odd keys quoted)."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p.isidentifier():
            out += f".{p}" if out else p
        else:
            out += f"[{json.dumps(_short(p, 40), ensure_ascii=False)}]"
    return out or ROOT


class _Problems:
    """An ordered, de-duplicated, capped list of problem lines."""

    def __init__(self, limit: int = MAX_PROBLEMS):
        self.lines: list[str] = []
        self._seen: set[str] = set()
        self.more = 0
        self.limit = limit

    def add(self, path: Iterable[str | int] | str, message: str) -> None:
        line = f"{path if isinstance(path, str) else format_path(path)}: {message}"
        if line in self._seen:
            return
        self._seen.add(line)
        if len(self.lines) < self.limit:
            self.lines.append(line)
        else:
            self.more += 1

    @property
    def full(self) -> bool:
        return len(self.lines) >= self.limit


def read_submission_bytes(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a submission file, after checking (without reading) that it is a regular file
    of at most ``max_bytes``. Raises :class:`DataError` naming the file."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: not a regular file")
    if st.st_size > max_bytes:
        raise DataError(f"{path}: {st.st_size:,} bytes is over the size limit of {max_bytes:,} bytes "
                        f"({max_bytes // 2**20} MB)")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # the file grew after stat
        raise DataError(f"{path}: over the size limit of {max_bytes:,} bytes")
    return data


def parse_submission(data: bytes | str, max_bytes: int = MAX_FILE_BYTES) -> tuple[Any, list[str]]:
    """Parse submission bytes safely: ``(document, problems)``; the document is ``None`` when the
    bytes are not a JSON document within the limits. Markers for bad numbers and repeated keys stay
    in the document for :func:`check_document` to report with their paths."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        return None, [f"{ROOT}: {len(data):,} bytes is over the size limit of {max_bytes:,} bytes"]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, [f"{ROOT}: not UTF-8 text (invalid byte 0x{data[e.start]:02x} at offset {e.start})"]
    text = text.removeprefix("\ufeff")
    containers = data.count(b"[") + data.count(b"{")  # an upper bound (brackets inside strings count too)
    if containers > MAX_CONTAINERS:
        return None, [f"{ROOT}: too large a structure ({containers:,} objects/arrays; "
                      f"the limit is {MAX_CONTAINERS:,})"]
    try:
        doc = json.loads(text, parse_float=_parse_float, parse_int=_parse_int,
                         parse_constant=_BadNumber, object_pairs_hook=_object_pairs)
    except json.JSONDecodeError as e:
        return None, [f"{ROOT}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"]
    except RecursionError:
        return None, [f"{ROOT}: nested deeper than {MAX_DEPTH} levels"]
    except ValueError as e:  # e.g. a number the float/int parser refuses
        return None, [f"{ROOT}: not valid JSON ({_short(str(e), 120)})"]
    return doc, []


def _walk(doc: Any, problems: _Problems) -> bool:
    """Report bad numbers, repeated keys and excessive depth; ``False`` when too deep to validate."""
    ok_depth = True
    stack: list[tuple[Any, tuple, int]] = [(doc, (), 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, _BadNumber):
            problems.add(path, node.reason())
        elif isinstance(node, dict):
            if depth >= MAX_DEPTH:
                problems.add(path, f"nested deeper than {MAX_DEPTH} levels")
                ok_depth = False
                continue
            if isinstance(node, _DuplicateKeys):
                for k in node.duplicates:
                    problems.add((*path, k), "repeated key")
            stack.extend((v, (*path, k), depth + 1) for k, v in reversed(node.items())
                         if isinstance(v, (dict, list, _BadNumber)))
        elif isinstance(node, list):
            if depth >= MAX_DEPTH:
                problems.add(path, f"nested deeper than {MAX_DEPTH} levels")
                ok_depth = False
                continue
            stack.extend((v, (*path, i), depth + 1) for i, v in reversed(list(enumerate(node)))
                         if isinstance(v, (dict, list, _BadNumber)))
    return ok_depth


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
               float: "a number", type(None): "null"}


def _type_name(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "a value")


def _schema_message(error) -> tuple[list, str] | None:
    """One (path, message) of a jsonschema error, in the words of this format."""
    path = list(error.absolute_path)
    v, value, inst = error.validator, error.validator_value, error.instance
    if isinstance(inst, _BadNumber):
        return path, inst.reason()
    if v == "type":
        want = value if isinstance(value, list) else [value]
        words = {"integer": "an integer", "number": "a number", "string": "a string", "object": "an object",
                 "array": "an array", "boolean": "a boolean", "null": "null"}
        return path, f"expected {' or '.join(words.get(w, w) for w in want)}, got {_type_name(inst)}" + (
            f" ({_short(inst, 30)!r})" if isinstance(inst, str) else "")
    if v == "required":
        missing = [k for k in value if isinstance(inst, dict) and k not in inst]
        return path, f"missing field{'s' if len(missing) > 1 else ''} {', '.join(repr(k) for k in missing)}"
    if v == "additionalProperties":
        extra = [k for k in inst if k not in error.schema.get("properties", {})]
        return path, f"unknown field{'s' if len(extra) > 1 else ''} {', '.join(repr(_short(k, 40)) for k in extra[:5])}"
    if v == "const":
        return path, f"must be {json.dumps(value)}, got {_short(inst, 30)}"
    if v == "enum":
        return path, f"must be one of {', '.join(json.dumps(x) for x in value)}, got {_short(inst, 30)!r}"
    if v == "minLength":
        return path, "empty" + (" text" if path[-1:] == ["text"] else " string")
    if v == "maxLength":
        return path, f"longer than {value:,} characters ({len(inst):,})"
    if v == "pattern":
        if inst == "":
            return None  # reported by minLength
        if path[-1:] == ["text"]:
            return path, "blank text (only white space)"
        if path[-1:] == ["url"]:
            return path, f"not an http(s) URL: {_short(inst, 60)!r}"
        return path, "contains control characters"
    if v == "minItems":
        return path, f"needs at least {value} item{'s' if value > 1 else ''}, got {len(inst)}"
    if v == "maxItems":
        return path, f"more than {value:,} items ({len(inst):,})"
    if v == "minimum":
        return path, f"must be >= {value}, got {_short(inst, 30)}"
    if v in ("if", "allOf"):
        return None  # the detailed errors of the branch are reported on their own
    return path, _short(error.message, 160)


def _report(errors: Iterable, problems: _Problems, prefix: tuple = ()) -> bool:
    """Add jsonschema errors as problem lines; ``False`` once the list is full."""
    for error in errors:
        found = _schema_message(error)
        if found is None:
            continue
        problems.add([*prefix, *found[0]], found[1])
        if problems.full:
            problems.more += 1  # at least one more: stop early on a hopeless file
            return False
    return True


_CONTROL = re.compile("[\x00-\x1f\x7f]")
_NON_SPACE = re.compile(r"\S")


def _item_looks_valid(item: Any, key: str) -> bool:
    """A fast pre-check of one prediction against the schema's item definition. It may be stricter
    than the schema, never looser: an item it flags is validated by jsonschema, which has the last
    word (and writes the message), so the schema stays the one definition of a valid item."""
    if type(item) is not dict or len(item) != 2 or "pair_id" not in item or key not in item:
        return False
    pid, value = item["pair_id"], item[key]
    if type(pid) is not str or not 0 < len(pid) <= 300 or _CONTROL.search(pid):
        return False
    if key == "score":
        return type(value) in (int, float)
    return type(value) is str and 0 < len(value) <= MAX_TEXT_CHARS and _NON_SPACE.search(value) is not None


def check_document(doc: Any, problems: _Problems | None = None) -> list[str]:
    """Structure problems of a parsed submission: bad numbers, repeated keys, depth, the schema.

    The schema validates the envelope and the first prediction; the other predictions (up to a
    million) go through a fast pre-check, and only those it flags are validated by jsonschema against
    the schema's own item definition, so the messages and the verdict are the schema's.
    """
    problems = problems or _Problems()
    if not _walk(doc, problems):
        return problems.lines
    preds = doc.get("predictions") if isinstance(doc, dict) else None
    if not isinstance(preds, list) or len(preds) <= 1:
        _report(submission_validator().iter_errors(doc), problems)
        return problems.lines
    envelope = dict(doc, predictions=preds[:1])  # a shallow copy: the document is not modified
    if not _report(submission_validator().iter_errors(envelope), problems):
        return problems.lines
    if len(preds) > MAX_PREDICTIONS:
        problems.add("predictions", f"more than {MAX_PREDICTIONS:,} items ({len(preds):,})")
    ds = doc.get("dataset")
    config = ds.get("config") if isinstance(ds, dict) else None
    key = PREDICTION_FIELD.get(config) if isinstance(config, str) else None
    if key is None:  # no item rule applies beyond "an object" (the schema's if/then)
        item_validator = submission_validator().evolve(schema={"type": "object"})
        flagged = (i for i in range(1, len(preds)) if type(preds[i]) is not dict)
    else:
        item_validator = _item_validator(key)
        flagged = (i for i in range(1, len(preds)) if not _item_looks_valid(preds[i], key))
    for i in flagged:
        if not _report(item_validator.iter_errors(preds[i]), problems, ("predictions", i)):
            break
    return problems.lines


@lru_cache(maxsize=2)
def _item_validator(key: str):
    """jsonschema validator of one prediction (the schema's ``$defs`` item definition)."""
    schema = submission_validator().schema
    name = "score_prediction" if key == "score" else "text_prediction"
    return submission_validator().evolve(schema={"$defs": schema["$defs"], "$ref": f"#/$defs/{name}"})


def check_against_reference(sub: dict, ref: ReferenceSplit, problems: _Problems | None = None) -> list[str]:
    """Problems of a submission against the split it claims to predict: the dataset name/config/
    split/fingerprint, and the pair ids (duplicate, unknown, missing). Parts with structure problems
    (reported by :func:`check_document`) are skipped."""
    problems = problems or _Problems()
    ds = sub.get("dataset") if isinstance(sub, dict) else None
    preds = sub.get("predictions") if isinstance(sub, dict) else None
    if not isinstance(ds, dict) or not isinstance(preds, list):
        return problems.lines  # structure problems are reported by check_document
    for key, want in (("name", ref.name), ("config", ref.config), ("split", ref.split),
                      ("fingerprint", ref.fingerprint)):
        got = ds.get(key)
        if want is not None and got is not None and got != want:
            problems.add(("dataset", key), f"{_short(got, 60)!r} does not match the dataset's {want!r}")
    if ds.get("config") != ref.config:
        return problems.lines  # pair ids of another config mean nothing here
    known = set(ref.pair_ids)
    first_index: dict[str, int] = {}
    n_unknown = 0
    for i, p in enumerate(preds):
        pid = p.get("pair_id") if isinstance(p, dict) else None
        if not isinstance(pid, str):
            continue  # reported by check_document
        if pid in first_index:
            problems.add(("predictions", i, "pair_id"), f"duplicate pair id {_short(pid)!r} "
                         f"(also predictions[{first_index[pid]}])")
            continue
        first_index[pid] = i
        if pid not in known:
            n_unknown += 1
            problems.add(("predictions", i, "pair_id"), f"unknown pair id {_short(pid)!r} "
                         f"(not in {ref.name}/{ref.config}/{ref.split})")
    missing = [pid for pid in ref.pair_ids if pid not in first_index]
    if missing:
        problems.add("predictions", f"{len(missing):,} of the {len(known):,} pairs of {ref.name}/{ref.config}/"
                     f"{ref.split} have no prediction (first: {', '.join(missing[:3])})")
    return problems.lines


def validate_submission(source: str | os.PathLike | bytes | dict, reference: ReferenceSplit | None = None,
                        max_bytes: int = MAX_FILE_BYTES) -> ValidationResult:
    """Validate a submission (a file path, its bytes, or an already parsed dict).

    Without ``reference`` only the structure is checked; with it, also the dataset and the pair
    ids. Never raises for a bad submission (only for an unreadable file: :class:`DataError`).
    """
    if isinstance(source, dict):
        doc, parse_problems = source, []
    else:
        data = source if isinstance(source, bytes) else read_submission_bytes(source, max_bytes)
        doc, parse_problems = parse_submission(data, max_bytes)
    result = ValidationResult(document=doc)
    if parse_problems:
        result.problems = parse_problems
        return result
    problems = _Problems()
    check_document(doc, problems)
    deep = any(line.endswith(f"nested deeper than {MAX_DEPTH} levels") for line in problems.lines)
    if reference is not None and not deep and not problems.full:
        check_against_reference(doc, reference, problems)
    result.problems, result.more = problems.lines, problems.more
    if not problems.lines:
        result.submission = doc
    return result


def claimed_split(doc: Any) -> tuple[str, str] | None:
    """``(config, split)`` a parsed document claims, when both are usable, else ``None``."""
    ds = doc.get("dataset") if isinstance(doc, dict) else None
    config, split = (ds.get("config"), ds.get("split")) if isinstance(ds, dict) else (None, None)
    if config in PREDICTION_FIELD and isinstance(split, str) and 0 < len(split) <= 100:
        return config, split
    return None


def prediction_values(sub: dict) -> tuple[list[str], list]:
    """``(pair_ids, values)`` of a valid submission (scores as floats, or texts)."""
    key = PREDICTION_FIELD[sub["dataset"]["config"]]
    preds = sub["predictions"]
    return [p["pair_id"] for p in preds], [p[key] for p in preds]
