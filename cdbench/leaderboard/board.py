"""The board: ranked entries with recomputed metrics, kept in ``BOARD/board.json``.

An entry is one model on one task (``scores`` or ``descriptions``) of one dataset split. Entries
are ranked within their table (task, dataset, split): scores by SRCC on ``all`` (ties by PLCC on
``all``, then by name), descriptions by the attribute macro-F1 on ``all`` (ties by METEOR).
Each entry carries significance marks against its table's leader: the STRESS F-test of Garcia et
al. (2007) (:func:`cdbench.metrics.stress_f_test`) and the overlap of the scene-bootstrap 95% CIs
of SRCC.

Accepted submissions are stored under ``BOARD/submissions/<task>/`` with content-addressed names,
so the board can always be rebuilt from them (:func:`build_board`). Adding an entry writes the
submission copy first and ``board.json`` last, both atomically (:mod:`cdbench.io`): a crash at any
point leaves ``board.json`` as it was (at worst an unreferenced submission copy remains).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdbench.errors import DataError
from cdbench.io import atomic_write_json

BOARD_VERSION = 1
BOARD_FILE = "board.json"
LOCK_FILE = ".board.lock"
SUBMISSIONS_DIR = "submissions"
SUBSETS: tuple[str, ...] = ("all", "aligned", "not_aligned")
MAX_SCATTER_POINTS = 600
MODEL_FIELDS: tuple[str, ...] = ("name", "kind", "url", "description", "parameters", "scale")


@dataclass(frozen=True)
class RankRule:
    """How a task's table is ranked: ``primary`` then ``tie`` (both higher = better) on ``all``."""

    primary: str
    tie: str


RANK_RULES: dict[str, RankRule] = {
    "scores": RankRule(primary="srcc", tie="plcc"),
    "descriptions": RankRule(primary="macro_f1", tie="meteor"),
}


def find_metric(metrics: Mapping[str, Any] | None, name: str, subset: str = "all") -> float | None:
    """The value of metric ``name`` for ``subset`` in a metrics dict, wherever the evaluator put it:
    ``metrics[subset][name]``, ``metrics[subset][group][name]``, ``metrics[name]`` or
    ``metrics[group][name]``. ``None`` when absent or not a finite number."""
    if not isinstance(metrics, Mapping):
        return None
    candidates: list[Any] = []
    scoped = metrics.get(subset)
    for scope in ((scoped,) if isinstance(scoped, Mapping) else ()) + (metrics,):
        candidates.append(scope.get(name))
        candidates.extend(v.get(name) for k, v in scope.items()
                          if isinstance(v, Mapping) and k not in SUBSETS and k not in ("ci95", "fit"))
    for value in candidates:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def json_clean(obj: Any) -> Any:
    """A JSON-safe copy: non-finite floats become ``None``, numpy scalars and tuples plain Python."""
    if isinstance(obj, Mapping):
        return {str(k): json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_clean(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return json_clean(obj.tolist())
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return str(obj)


def table_key(entry: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(task, dataset name, split)``: the table an entry belongs to."""
    return entry["task"], entry["dataset"]["name"], entry["dataset"]["split"]


def entry_key(entry: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """``(task, dataset name, split, model name)``: what makes an entry unique on the board."""
    return (*table_key(entry), entry["model"]["name"])


def slug(name: str) -> str:
    """A file-name-safe slug of a model name (never used for anything but a file name we choose)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60]
    return s or "model"


def scatter_points(predictions: Iterable[float], human: Iterable[float], aligned: Iterable[bool],
                   max_points: int = MAX_SCATTER_POINTS) -> dict[str, list]:
    """A deterministic, evenly spaced subsample (at most ``max_points``) of (prediction, human,
    aligned) for the entry's scatter plot, values rounded to 4 significant digits."""
    p, h, a = list(predictions), list(human), list(aligned)
    keep = [i for i in range(len(p)) if p[i] is not None and h[i] is not None
            and math.isfinite(float(p[i])) and math.isfinite(float(h[i]))]
    if len(keep) > max_points:
        step = len(keep) / max_points
        keep = [keep[int(k * step)] for k in range(max_points)]
    return {"prediction": [float(f"{float(p[i]):.4g}") for i in keep],
            "human": [float(f"{float(h[i]):.4g}") for i in keep],
            "aligned": [bool(a[i]) for i in keep]}


def make_entry(submission: Mapping[str, Any], metrics: Mapping[str, Any], scatter: Mapping[str, list] | None = None,
               submission_file: str | None = None, submission_sha256: str | None = None,
               scoring: Mapping[str, Any] | None = None) -> dict:
    """A board entry from a validated submission and its recomputed metrics. Metric values in the
    submission itself are ignored."""
    task = submission["dataset"]["config"]
    model = {k: submission["model"][k] for k in MODEL_FIELDS if k in submission["model"]}
    dataset = {k: submission["dataset"].get(k) for k in ("name", "config", "split", "fingerprint")}
    entry = {"model": model, "task": task, "dataset": dataset,
             "n": len(submission["predictions"]), "metrics": json_clean(metrics)}
    if scatter is not None:
        entry["scatter"] = json_clean(scatter)
    if scoring:
        entry["scoring"] = json_clean(scoring)
    if submission_file:
        entry["submission"] = {"file": submission_file, "sha256": submission_sha256}
    return entry


def _sort_key(entry: Mapping[str, Any]) -> tuple:
    rule = RANK_RULES.get(entry["task"], RANK_RULES["scores"])
    p, t = find_metric(entry["metrics"], rule.primary), find_metric(entry["metrics"], rule.tie)
    return (p is None, -(p or 0.0), t is None, -(t or 0.0), entry["model"]["name"])


def _ci(entry: Mapping[str, Any], name: str) -> tuple[float, float] | None:
    ci = (entry["metrics"].get("all") or {}).get("ci95") if isinstance(entry["metrics"].get("all"), Mapping) else None
    lo_hi = ci.get(name) if isinstance(ci, Mapping) else None
    if isinstance(lo_hi, list) and len(lo_hi) == 2 and all(isinstance(v, (int, float)) for v in lo_hi):
        return float(lo_hi[0]), float(lo_hi[1])
    return None


def significance(entry: Mapping[str, Any], leader: Mapping[str, Any], alpha: float = 0.05) -> dict:
    """Marks of ``entry`` against its table's ``leader`` (scores task).

    ``stress``: the STRESS F-test (Garcia et al., JOSA A 2007) on ``all`` via
    :func:`cdbench.metrics.stress_f_test`: ``better`` / ``worse`` / ``same`` (not significant at
    ``alpha``) / ``n/a``. ``srcc_ci``: whether the scene-bootstrap 95% CIs of SRCC on ``all``
    overlap (``overlap`` / ``separate`` / ``n/a``).
    """
    import warnings

    from cdbench.metrics import MetricWarning, stress_f_test

    out = {"against": leader["model"]["name"], "stress": "n/a", "stress_p": None, "srcc_ci": "n/a"}
    if entry is leader or entry_key(entry) == entry_key(leader):
        return {**out, "stress": "leader", "srcc_ci": "leader"}
    sa, sb = find_metric(entry["metrics"], "stress"), find_metric(leader["metrics"], "stress")
    n = int(min(find_metric(entry["metrics"], "n") or entry.get("n") or 0,
                find_metric(leader["metrics"], "n") or leader.get("n") or 0))  # pairs the STRESS values used
    if sa is not None and sb is not None and sb > 0 and n >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MetricWarning)
            test = stress_f_test(sa, sb, n, alpha=alpha)
        verdict = {"A better": "better", "B better": "worse", "not significant": "same"}.get(test["verdict"], "n/a")
        out.update(stress=verdict, stress_p=json_clean(test["p_value"]))
    ca, cb = _ci(entry, "srcc"), _ci(leader, "srcc")
    if ca and cb and all(math.isfinite(v) for v in (*ca, *cb)):
        out["srcc_ci"] = "overlap" if ca[0] <= cb[1] and cb[0] <= ca[1] else "separate"
    return out


def rank_entries(entries: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Entries sorted by table, then ranked within each table (rank 1 = best), with significance
    marks against the table's leader (scores task). Deterministic: the same set of entries gives
    the same list whatever order they were added in."""
    tables: dict[tuple, list[dict]] = {}
    for e in entries:
        tables.setdefault(table_key(e), []).append(dict(e))
    out = []
    for key in sorted(tables):
        rows = sorted(tables[key], key=_sort_key)
        for i, e in enumerate(rows):
            e["rank"] = i + 1
            if e["task"] == "scores":
                e["significance"] = significance(e, rows[0])
            else:
                e.pop("significance", None)
            out.append(e)
    return out


def build_board(entries: Iterable[Mapping[str, Any]]) -> dict:
    """A board document from entries (the from-scratch construction)."""
    return {"board_version": BOARD_VERSION,
            "ranking": {task: {"by": r.primary, "ties": r.tie, "subset": "all"} for task, r in RANK_RULES.items()},
            "entries": rank_entries(entries)}


def load_board(board_dir: str | Path) -> dict:
    """The board in ``board_dir`` (an empty board when there is none yet)."""
    path = Path(board_dir) / BOARD_FILE
    if not path.exists():
        return build_board([])
    try:
        board = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable board file ({e})") from None
    if not isinstance(board, dict) or board.get("board_version") != BOARD_VERSION or \
            not isinstance(board.get("entries"), list):
        raise DataError(f"{path}: not a cdbench board (board_version {BOARD_VERSION} with entries)")
    return board


@contextmanager
def board_lock(board_dir: str | Path) -> Iterator[None]:
    """An exclusive lock on the board folder (``.board.lock``, ``flock``) for read-modify-write
    updates, so two submits at the same time cannot lose one another's entry. Where ``fcntl`` is
    not available (Windows) updates are still atomic but not serialised."""
    board_dir = Path(board_dir)
    board_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(board_dir / LOCK_FILE, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def add_entry(board_dir: str | Path, entry: Mapping[str, Any], submission: Mapping[str, Any] | None = None,
              replace: bool = False) -> dict:
    """Add ``entry`` (and store its ``submission``) to the board in ``board_dir``, atomically and
    under :func:`board_lock`.

    An entry for the same model name, task, dataset and split is replaced only with ``replace``;
    otherwise :class:`DataError`. Returns the new board.
    """
    with board_lock(board_dir):
        return _add_entry(Path(board_dir), entry, submission, replace)


def _add_entry(board_dir: Path, entry: Mapping[str, Any], submission: Mapping[str, Any] | None,
               replace: bool) -> dict:
    board = load_board(board_dir)
    entry = dict(entry)
    old = [e for e in board["entries"] if entry_key(e) == entry_key(entry)]
    if old and not replace:
        task, name, split, model = entry_key(entry)
        raise DataError(f"model {model!r} is already on the board ({task}, {name}/{split}); "
                        f"use --replace to replace its entry")
    if submission is not None:
        data = (json.dumps(json_clean(submission), ensure_ascii=False, sort_keys=True, allow_nan=False) + "\n"
                ).encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        rel = f"{SUBMISSIONS_DIR}/{entry['task']}/{slug(entry['model']['name'])}-{digest[:12]}.json"
        target = board_dir / rel
        if not target.exists():
            from cdbench.io import atomic_write_bytes

            atomic_write_bytes(target, data)
        entry["submission"] = {"file": rel, "sha256": digest}
    kept = [e for e in board["entries"] if entry_key(e) != entry_key(entry)]
    new_board = build_board([*kept, entry])
    atomic_write_json(board_dir / BOARD_FILE, new_board)
    still_used = {e.get("submission", {}).get("file") for e in new_board["entries"]}
    for e in old:  # the replaced entry's submission copy, once the new board is in place
        f = e.get("submission", {}).get("file")
        if f and f not in still_used and _inside(board_dir, f):
            (board_dir / f).unlink(missing_ok=True)
    return new_board


def _inside(root: Path, rel: str) -> bool:
    """Whether ``rel`` names a file inside ``root`` (the board never follows a path out of it)."""
    try:
        return (root / rel).resolve().is_relative_to(root.resolve())
    except (OSError, ValueError):
        return False


def table_entries(board: Mapping[str, Any]) -> dict[tuple[str, str, str], list[dict]]:
    """The board's entries grouped by table ``(task, dataset, split)``, in rank order."""
    out: dict[tuple, list[dict]] = {}
    for e in board["entries"]:
        out.setdefault(table_key(e), []).append(e)
    for rows in out.values():
        rows.sort(key=lambda e: e.get("rank", 0))
    return out
