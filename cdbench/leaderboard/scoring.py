"""Scoring a validated submission for the board, with the evaluators' one scoring path.

:func:`cdbench.evaluation.score_predictions` recomputes every metric (per subset, scene-bootstrap
95% CIs for scores; caption and attribute metrics for descriptions) from the built dataset folder
(a ``--labels-only`` build is enough). Metric values inside a submission are never used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cdbench.leaderboard.board import scatter_points
from cdbench.leaderboard.validate import ReferenceSplit


@dataclass
class SplitLabels:
    """One split of a built dataset: its identity (for validation) and label columns (for plots)."""

    reference: ReferenceSplit
    labels: dict[str, Any]  # cdbench.evaluation.scoring.split_labels


def load_split_labels(dataset_dir: str | os.PathLike, config: str, split: str) -> SplitLabels:
    """Identity and labels of ``config``/``split`` of the built dataset folder ``dataset_dir``."""
    from cdbench.evaluation.scoring import dataset_block, split_labels

    block = dataset_block(dataset_dir, config, split)
    labels = split_labels(dataset_dir, config, split)
    ref = ReferenceSplit(name=str(block["name"]), config=config, split=split, pair_ids=labels["pair_id"],
                         fingerprint=block.get("fingerprint"))
    return SplitLabels(reference=ref, labels=labels)


def dataset_reference(dataset_dir: str | os.PathLike, sub: dict[str, Any]) -> SplitLabels:
    """:func:`load_split_labels` for the config/split a (structurally valid) submission names."""
    return load_split_labels(dataset_dir, sub["dataset"]["config"], sub["dataset"]["split"])


@dataclass
class ScoredSubmission:
    metrics: dict  # {"all": {...}, "aligned": {...}, "not_aligned": {...}}
    scatter: dict | None  # scores task: a sample of (prediction, human, aligned)
    scoring: dict  # settings, coverage and versions of the scoring run


def score_submission(sub: dict, dataset_dir: str | os.PathLike, split_labels: SplitLabels | None = None,
                     n_boot: int = 1000, seed: int = 0) -> ScoredSubmission:
    """Recompute the metrics of a validated submission on its split of ``dataset_dir``."""
    from cdbench.evaluation import score_predictions

    ds = sub["dataset"]
    split_labels = split_labels or dataset_reference(dataset_dir, sub)
    result = score_predictions(sub, dataset_dir, ds["config"], ds["split"], n_boot=n_boot, seed=seed,
                               model=sub["model"])
    scatter = None
    if ds["config"] == "scores":
        labels = split_labels.labels
        index = {p: i for i, p in enumerate(labels["pair_id"])}
        rows = [index[p["pair_id"]] for p in sub["predictions"]]
        aligned = labels.get("aligned") or [True] * len(labels["pair_id"])
        scatter = scatter_points([float(p["score"]) for p in sub["predictions"]],
                                 [labels["score"][i] for i in rows], [aligned[i] for i in rows])
    scoring = {k: result[k] for k in ("settings", "coverage", "versions") if k in result}
    return ScoredSubmission(metrics=result["subsets"], scatter=scatter, scoring=scoring)


def rebuild_board(board_dir: str | os.PathLike, dataset_dir: str | os.PathLike, write: bool = False) -> dict:
    """The board rebuilt from scratch: every stored submission re-validated and re-scored (with
    the bootstrap settings its entry was scored with), then ranked. With ``write`` the result
    replaces ``board.json`` atomically. Entries whose submission file is missing are an error."""
    from pathlib import Path

    from cdbench.errors import DataError
    from cdbench.io import atomic_write_json
    from cdbench.leaderboard.board import BOARD_FILE, _inside, board_lock, build_board, load_board, make_entry
    from cdbench.leaderboard.validate import validate_submission

    board_dir = Path(board_dir)
    entries = []
    before = load_board(board_dir)["entries"]
    for old in before:
        rel = (old.get("submission") or {}).get("file")
        if not rel or not _inside(board_dir, rel) or not (board_dir / rel).is_file():
            raise DataError(f"{board_dir}: the submission of {old['model']['name']!r} is missing ({rel})")
        result = validate_submission(board_dir / rel)
        result.raise_for_problems(str(board_dir / rel))
        sub = result.submission
        labels = dataset_reference(dataset_dir, sub)
        validate_submission(sub, labels.reference).raise_for_problems(str(board_dir / rel))
        settings = (old.get("scoring") or {}).get("settings") or {}
        scored = score_submission(sub, dataset_dir, labels, n_boot=int(settings.get("n_boot", 1000)),
                                  seed=int(settings.get("seed", 0)))
        entry = make_entry(sub, scored.metrics, scored.scatter, scoring=scored.scoring)
        entry["submission"] = old["submission"]
        entries.append(entry)
    board = build_board(entries)
    if write:
        with board_lock(board_dir):
            if load_board(board_dir)["entries"] != before:
                raise DataError(f"{board_dir}: the board changed while it was being rebuilt; run rebuild again")
            atomic_write_json(board_dir / BOARD_FILE, board)
    return board
