"""``score_predictions``: the metrics of a model's predictions on one split of a built dataset.

The one scoring path of cdbench: ``cdbench evaluate`` (after running a model), ``cdbench score``
(an existing predictions / submission file) and the leaderboard (recomputing a submission) all
call it, so the same predictions always give the same numbers. Only labels are read: it works on a
``--labels-only`` build.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cdbench.data import ATTRIBUTES, SEVERITIES
from cdbench.errors import DataError
from cdbench.evaluation.predictions import read_predictions
from cdbench.evaluation.report import jsonable
from cdbench.metrics.subsets import SUBSETS, subset_masks, subset_metrics
from cdbench.versions import environment_versions


def dataset_block(dataset_dir: str | os.PathLike, config: str, split: str) -> dict:
    """The ``dataset`` block of results and submissions: name, config, split, fingerprint, path."""
    from cdbench.data.dataset import dataset_info, read_build_record

    info = dataset_info(dataset_dir)
    out = {"name": info.get("name") or Path(dataset_dir).name, "config": config, "split": split,
           "fingerprint": info.get("label_fingerprint"), "path": str(Path(dataset_dir).resolve()),
           "labels_only": info.get("labels_only", False)}
    if read_build_record(dataset_dir).get("synthetic"):
        out["synthetic"] = True
    return out


def split_labels(dataset_dir: str | os.PathLike, config: str, split: str) -> dict[str, Any]:
    """The label columns of a split as lists: pair_id, scene, aligned, score or reference/attributes."""
    from cdbench.data.dataset import open_split

    ds = open_split(dataset_dir, config, split)
    cols = ds.column_names
    out: dict[str, Any] = {"pair_id": list(ds["pair_id"]), "scene": list(ds["scene"]) if "scene" in cols else None,
                           "aligned": [bool(a) for a in ds["aligned"]] if "aligned" in cols else None}
    if config == "scores":
        if "score" not in cols:
            raise DataError(f"{dataset_dir}: split {config}/{split} has no 'score' column")
        out["score"] = [np.nan if s is None else float(s) for s in ds["score"]]
    else:
        out["reference"] = list(ds["reference"])
        sev = {}
        for a in ATTRIBUTES:
            if a in cols:
                names = ds.features[a].names if hasattr(ds.features[a], "names") else None
                sev[a] = [None if v is None or (isinstance(v, int) and v < 0) else
                          (names[v] if names and isinstance(v, int) else str(v)) for v in ds[a]]
        out["attributes"] = [{a: sev[a][i] if a in sev and sev[a][i] in SEVERITIES else None for a in ATTRIBUTES}
                             for i in range(len(out["pair_id"]))] if sev else None
    return out


def _aligned(labels: dict, rows: list[int]) -> np.ndarray:
    if labels["aligned"] is None:
        return np.ones(len(rows), bool)
    return np.array([labels["aligned"][i] for i in rows], bool)


def align_predictions(pred: Mapping[str, Any], pair_ids: list[str], allow_missing: bool, source: str
                      ) -> tuple[list[int], dict]:
    """Row indices of the split that have a prediction; unknown pair ids are an error, missing
    ones too unless ``allow_missing``. Returns ``(rows, coverage)``."""
    index = {p: i for i, p in enumerate(pair_ids)}
    unknown = [p for p in pred if p not in index]
    if unknown:
        raise DataError(f"{source}: {len(unknown)} prediction(s) for pairs not in this split, e.g. {unknown[0]!r} "
                        "(wrong --config/--split or dataset?)")
    rows = [i for i, p in enumerate(pair_ids) if p in pred]
    missing = len(pair_ids) - len(rows)
    if missing and not allow_missing:
        first = next(p for p in pair_ids if p not in pred)
        raise DataError(f"{source}: {missing} of {len(pair_ids)} pairs of the split have no prediction, e.g. "
                        f"{first!r} (finish the run, or score the covered pairs with --allow-missing)")
    return rows, {"n_pairs": len(pair_ids), "n_predicted": len(rows), "n_missing": missing}


def score_predictions(predictions: str | os.PathLike | Mapping | Iterable, dataset_dir: str | os.PathLike,
                      config: str = "scores", split: str = "test", *, fit: str = "5pl", n_boot: int = 1000,
                      seed: int = 0, scale: str | None = None, allow_missing: bool = False,
                      model: Mapping[str, Any] | None = None, bertscore_model: str | None = None,
                      device: str | None = None) -> dict:
    """Metrics of ``predictions`` on ``config``/``split`` of the built dataset at ``dataset_dir``.

    ``predictions``: a predictions.jsonl / submission.json path, a submission dict, a list of
    ``{"pair_id", "score"|"text"}`` records or a ``{pair_id: value}`` mapping. ``scale``
    (``"difference"`` or ``"level"``) defaults to the submission's ``model.scale``, else
    ``"difference"``. Returns the JSON-ready metrics dict (undefined values are None)::

        {"task", "subsets": {"all": {"n", "srcc", "krcc", "plcc", "plcc_raw", "rmse", "stress",
         "ci95", "fit", ...}, "aligned": ..., "not_aligned": ...}, "model", "dataset",
         "coverage", "settings", "versions", "created"}

    and for ``descriptions``: per subset ``{"n", "captions": {...}, "attributes": {...}}``.
    Raises DataError for unknown pairs, missing pairs (unless ``allow_missing``), and a split
    without human scores.
    """
    from cdbench.data.dataset import read_build_record

    read_build_record(dataset_dir)  # a one-line error for a folder that is not a dataset
    pred, header = read_predictions(predictions, config)
    if not pred:
        raise DataError(f"{predictions if isinstance(predictions, (str, os.PathLike)) else 'predictions'}: "
                        "no predictions")
    source = str(predictions) if isinstance(predictions, (str, os.PathLike)) else "predictions"
    model_block = dict(model or header.get("model") or {})
    hdr_ds = header.get("dataset") or {}
    ds_block = dataset_block(dataset_dir, config, split)
    if hdr_ds.get("config") not in (None, config) or hdr_ds.get("split") not in (None, split):
        raise DataError(f"{source}: predictions are for {hdr_ds.get('config')}/{hdr_ds.get('split')}, "
                        f"not {config}/{split} (pass --config/--split)")
    if hdr_ds.get("fingerprint") and ds_block["fingerprint"] and hdr_ds["fingerprint"] != ds_block["fingerprint"]:
        warnings.warn(f"{source}: made on a dataset with another label fingerprint than {dataset_dir}",
                      stacklevel=2)
    labels = split_labels(dataset_dir, config, split)
    rows, coverage = align_predictions(pred, labels["pair_id"], allow_missing, source)
    scale = scale or model_block.get("scale") or "difference"
    out: dict[str, Any] = {"task": config, "model": model_block, "dataset": ds_block, "coverage": coverage}
    if config == "scores":
        human = np.array([labels["score"][i] for i in rows], dtype=np.float64)
        scored = np.isfinite(human)
        if not scored.any():
            raise DataError(f"{dataset_dir}: split {config}/{split} has no human scores (hidden labels); "
                            "evaluate on a split with scores, e.g. --split train")
        coverage["n_unscored"] = int((~scored).sum())
        rows = [r for r, ok in zip(rows, scored) if ok]
        ids = [labels["pair_id"][i] for i in rows]
        x = np.array([pred[p] for p in ids], dtype=np.float64)
        y = human[scored]
        aligned = _aligned(labels, rows)
        scenes = [labels["scene"][i] for i in rows] if labels["scene"] else None
        out["subsets"] = subset_metrics(x, y, aligned, scenes, fit=fit, n_boot=n_boot, seed=seed, scale=scale)
        stress_on = "human score scale" + (" (level values mapped by cdbench.data.level_value_to_score)"
                                           if scale == "level" else "")
        out["settings"] = {"fit": fit, "n_boot": n_boot, "seed": seed, "scale": scale,
                           "ci": "scene bootstrap, percentile 95%", "stress_on": stress_on}
    else:
        from cdbench.metrics.attribute_accuracy import attribute_accuracy
        from cdbench.metrics.captions import CaptionScorer

        ids = [labels["pair_id"][i] for i in rows]
        texts = [pred[p] for p in ids]
        refs = [labels["reference"][i] for i in rows]
        attr_refs = [labels["attributes"][i] for i in rows] if labels.get("attributes") else refs
        aligned = _aligned(labels, rows)
        masks = subset_masks(aligned)
        out["subsets"] = {}
        with CaptionScorer(bertscore_model=bertscore_model, device=device) as scorer:
            for name in SUBSETS:
                idx = np.flatnonzero(masks[name])
                if idx.size == 0:
                    out["subsets"][name] = {"n": 0}
                    continue
                sub_t, sub_r = [texts[i] for i in idx], [refs[i] for i in idx]
                out["subsets"][name] = {
                    "n": int(idx.size),
                    "captions": scorer.score(sub_t, sub_r),
                    "attributes": attribute_accuracy(sub_t, [attr_refs[i] for i in idx]),
                }
        out["settings"] = {"bertscore_model": out["subsets"]["all"]["captions"]["settings"].get("bertscore", {})
                           .get("model")}
    out["versions"] = environment_versions()
    out["created"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return jsonable(out)
