"""Scoring a validated submission against its dataset split, for the board.

The labels come from the built dataset folder (:func:`cdbench.data.dataset.open_split`, works on a
``--labels-only`` build); the metrics are recomputed with the evaluators
(:func:`cdbench.evaluation.score_predictions` when present, else :mod:`cdbench.metrics` directly:
per-subset correlations, STRESS and scene-bootstrap CIs for scores; caption and attribute metrics
for descriptions). Any metric values inside the submission are ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cdbench.errors import DataError
from cdbench.leaderboard.board import scatter_points
from cdbench.leaderboard.validate import ReferenceSplit


@dataclass
class SplitLabels:
    """The label columns of one split that scoring needs, in dataset order."""

    reference: ReferenceSplit
    aligned: list[bool]
    scenes: list[str]
    scores: list[float | None]  # scores task; None where hidden
    texts: list[str | None]  # descriptions task: the reference descriptions


def load_split_labels(dataset_dir: str | os.PathLike, config: str, split: str) -> SplitLabels:
    """Labels and identity of ``config``/``split`` of a built dataset folder."""
    from cdbench.data.dataset import dataset_info, open_split

    info = dataset_info(dataset_dir)
    ds = open_split(dataset_dir, config, split)
    cols = set(ds.column_names)
    pair_ids = list(ds["pair_id"])
    n = len(pair_ids)
    ref = ReferenceSplit(name=str(info.get("name") or os.path.basename(os.path.abspath(dataset_dir))),
                         config=config, split=split, pair_ids=pair_ids, fingerprint=info.get("label_fingerprint"))
    return SplitLabels(
        reference=ref,
        aligned=[bool(a) for a in ds["aligned"]] if "aligned" in cols else [True] * n,
        scenes=[str(s) for s in ds["scene"]] if "scene" in cols else [""] * n,
        scores=[None if s is None else float(s) for s in ds["score"]] if "score" in cols else [None] * n,
        texts=list(ds["reference"]) if "reference" in cols else [None] * n,
    )


@dataclass
class ScoredSubmission:
    metrics: dict
    scatter: dict | None
    scoring: dict  # how the metrics were computed (settings, versions)


def score_submission(sub: dict, labels: SplitLabels, n_boot: int = 1000, seed: int = 0) -> ScoredSubmission:
    """Recompute every metric of a validated ``sub`` (pair ids already checked against ``labels``)."""
    import numpy as np

    from cdbench.versions import environment_versions

    config = sub["dataset"]["config"]
    index = {pid: i for i, pid in enumerate(labels.reference.pair_ids)}
    order = [index[p["pair_id"]] for p in sub["predictions"]]
    if config == "scores":
        from cdbench.metrics import subset_metrics

        human = [labels.scores[i] for i in order]
        if any(h is None for h in human):
            hidden = sum(h is None for h in human)
            raise DataError(f"{labels.reference.name}/{config}/{labels.reference.split}: {hidden} of the "
                            f"{len(human)} pairs have hidden scores: this split cannot be scored here")
        pred = np.array([float(p["score"]) for p in sub["predictions"]])
        aligned = [labels.aligned[i] for i in order]
        scale = sub["model"].get("scale", "difference")
        metrics = subset_metrics(pred, np.array(human), aligned, [labels.scenes[i] for i in order],
                                 n_boot=n_boot, seed=seed, scale=scale)
        scatter = scatter_points(pred.tolist(), human, aligned)
        settings = {"fit": "5pl", "n_boot": n_boot, "seed": seed, "bootstrap_unit": "scene", "scale": scale}
    else:
        from cdbench.metrics import attribute_accuracy, caption_metrics

        texts = [p["text"] for p in sub["predictions"]]
        refs = [labels.texts[i] for i in order]
        if any(r is None for r in refs):
            raise DataError(f"{labels.reference.name}/{config}/{labels.reference.split}: reference descriptions "
                            "are missing: this split cannot be scored here")
        metrics = {"all": {"n": len(texts), "captions": caption_metrics(texts, refs),
                           "attributes": attribute_accuracy(texts, refs)}}
        scatter = None
        settings = {}
    return ScoredSubmission(metrics=metrics, scatter=scatter,
                            scoring={"settings": settings, "versions": environment_versions()})


def dataset_reference(dataset_dir: str | os.PathLike, sub: dict[str, Any]) -> SplitLabels:
    """The labels of the split a (structurally valid) submission names, from ``dataset_dir``."""
    ds = sub["dataset"]
    return load_split_labels(dataset_dir, ds["config"], ds["split"])
