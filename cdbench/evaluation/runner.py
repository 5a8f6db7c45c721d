"""The evaluation runner: a model over one split, resumable, then every output file.

``evaluate_model`` writes, in ``OUT/<model>/<config>-<split>/``:

* ``predictions.jsonl``: ``{"pair_id", "score"|"text"}`` appended (and fsynced) after every batch,
  so an interruption (Ctrl-C, kill -9, a crash) loses at most the batch in flight; a rerun skips the
  pairs already there and never recomputes them. ``run.json`` records the model and the dataset
  fingerprint, and a rerun with another model / dataset into the same folder is refused.
* ``submission.json`` (the leaderboard format), ``metrics.json`` (:func:`score_predictions`),
  ``scatter.png`` (scores) and ``table.md``, each written atomically once all pairs are done.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cdbench.errors import DataError, ModelError
from cdbench.evaluation.predictions import SUBMISSION_SCHEMA_VERSION, predictions_mapping, value_key
from cdbench.evaluation.report import jsonable, metrics_table, scatter_plot
from cdbench.evaluation.scoring import dataset_block, score_predictions
from cdbench.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from cdbench.models.base import CDModel
from cdbench.versions import environment_versions

PREDICTIONS_FILE = "predictions.jsonl"
RUN_FILE = "run.json"
SUBMISSION_FILE = "submission.json"
METRICS_FILE = "metrics.json"
SCATTER_FILE = "scatter.png"
TABLE_FILE = "table.md"


@dataclass
class EvaluationResult:
    """Where the outputs are and what they say."""

    out_dir: Path
    metrics: dict
    table: str
    n_computed: int
    n_resumed: int

    @property
    def predictions_path(self) -> Path:
        return self.out_dir / PREDICTIONS_FILE


def model_slug(name: str) -> str:
    """A folder name for a model name: letters, digits, ``.``, ``_``, ``-`` (others become ``-``)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return slug[:100] or "model"


def repair_torn_tail(path: Path) -> None:
    """Cut an unterminated last line (a write interrupted by kill -9) so appends stay valid JSONL."""
    if not path.is_file():
        return
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)
        f.flush()
        os.fsync(f.fileno())


def external_image_pairs(images: str | os.PathLike, names1: list[str], names2: list[str]) -> list[tuple[Path, Path]]:
    """``(images / name1, images / name2)`` per row; a name with a folder part or a missing file is a
    one-line DataError (names never leave ``images``)."""
    root = Path(images)
    if not root.is_dir():
        raise DataError(f"{root}: images folder not found")
    cache: dict[str, Path] = {}

    def resolve(name: str) -> Path:
        if name not in cache:
            if not name or Path(name).name != name or name in (".", "..") or "\\" in name:
                raise DataError(f"{root}: image name {name!r} is not a bare file name")
            path = root / name
            if not path.is_file():
                raise DataError(f"{path}: image file not found")
            cache[name] = path
        return cache[name]

    return [(resolve(a), resolve(b)) for a, b in zip(names1, names2)]


@contextmanager
def run_lock(out_dir: Path):
    """An exclusive lock on ``out_dir`` for the length of a run (released by the OS even after
    kill -9): a second ``cdbench evaluate`` into the same folder is refused instead of interleaving
    its predictions. A no-op where ``fcntl`` is unavailable (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(out_dir / ".lock", "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DataError(f"{out_dir}: another cdbench evaluate is writing here; wait for it or use "
                            "another --out") from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _run_record(model_info: dict, ds: dict) -> dict:
    return {"model": model_info, "dataset": {k: ds[k] for k in ("name", "config", "split", "fingerprint")}}


def _check_run_record(out_dir: Path, record: dict) -> None:
    import json

    path = out_dir / RUN_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old != jsonable(record):
            raise DataError(f"{out_dir} holds predictions of another model, settings or dataset ({path}); "
                            "use another --out, or --overwrite to start over")
    else:
        atomic_write_json(path, jsonable(record))


def evaluate_model(model: str | os.PathLike | CDModel, dataset_dir: str | os.PathLike, config: str = "scores",
                   split: str = "test", out: str | os.PathLike = "results", *, fit: str = "5pl",
                   batch_size: int | None = None, n_boot: int = 1000, seed: int = 0, device: str | None = None,
                   overwrite: bool = False, progress: bool = True, plot: bool = True,
                   model_options: dict[str, Any] | None = None, title_note: str = "",
                   on_batch: Callable[[int], None] | None = None, bertscore_model: str | None = None,
                   images: str | os.PathLike | None = None) -> EvaluationResult | None:
    """Run ``model`` (a name, a folder or a :class:`CDModel`) over ``config``/``split`` of the built
    dataset ``dataset_dir`` and write every output (see the module docstring). Resumes a previous
    run in the same folder. ``on_batch(k)`` is called after the k-th batch is saved (tests use it
    to simulate an interruption). ``images``: a folder holding the images by file name (for a
    ``--labels-only`` build), instead of the dataset's own ``images/``.

    Under ``torchrun`` / ``accelerate launch`` every rank predicts a shard of the pairs (resumable
    part files merged into the same ``predictions.jsonl`` one process writes); rank 0 then writes the
    other outputs and returns the result, the other ranks return None."""
    from cdbench.data.dataset import image_pairs, open_split, read_build_record

    key = value_key(config)
    if batch_size is not None and batch_size < 1:
        raise DataError(f"--batch-size must be at least 1, got {batch_size}")
    read_build_record(dataset_dir)
    ds = open_split(dataset_dir, config, split)
    if config == "scores" and all(s is None for s in ds["score"]):
        raise DataError(f"{dataset_dir}: split {config}/{split} has no human scores (hidden labels); "
                        "evaluate on a split with scores, e.g. --split train")
    ds_block = dataset_block(dataset_dir, config, split)
    if ds_block.get("synthetic") and "SYNTHETIC" not in title_note:
        title_note += " (SYNTHETIC data)"
    if images is not None:
        pairs = external_image_pairs(images, ds["image1_file"], ds["image2_file"])
    else:
        try:
            pairs = image_pairs(dataset_dir, ds)  # a one-line error for a missing image
        except DataError as e:
            if ds_block.get("labels_only"):
                raise DataError(f"{e}; this is a --labels-only build: pass --images DIR (the SPCD images/ "
                                "folder)") from None
            raise
    rank, world = _launched_ranks()
    if not isinstance(model, CDModel):
        from cdbench.models.registry import create_model

        opts = dict(model_options or {})
        if device:
            opts["device"] = device
        model = create_model(model, **opts)
    if config == "descriptions" and not model.can_describe:
        raise ModelError(f"model {model.name!r} cannot describe pairs; evaluate it with --config scores")
    if batch_size is None:
        batch_size = max(1, int(getattr(model, "preferred_chunk", 64)))
    info = model.info()
    out_dir = Path(out) / model_slug(info["name"]) / f"{config}-{split}"
    out_dir.mkdir(parents=True, exist_ok=True)
    if world > 1:  # under torchrun / accelerate launch: every rank predicts its shard, rank 0 writes the rest
        if overwrite:
            raise DataError("--overwrite is not supported under a multi-process launcher; clear the folder first")
        if not _predict_shards(model, info, out_dir, ds, ds_block, pairs, config, key, batch_size, progress):
            return None
    with run_lock(out_dir):
        if overwrite:  # under the lock: never pull the files from under a running evaluation
            import shutil

            for child in out_dir.iterdir():
                if child.name != ".lock":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        return _run(model, info, out_dir, ds, ds_block, pairs, dataset_dir, config, split, key, batch_size, fit,
                    n_boot, seed, device, progress, plot, title_note, on_batch, bertscore_model)


def _launched_ranks() -> tuple[int, int]:
    """``(rank, world_size)`` of a ``torchrun`` / ``accelerate launch`` run (the process group is
    initialised before the model is created, so each rank takes its own GPU); ``(0, 1)`` otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    from cdbench.models.mllm.distributed import init_distributed

    return init_distributed()


def _predict_shards(model, info, out_dir, ds, ds_block, pairs, config, key, batch_size, progress) -> bool:
    """Predict the pairs not yet in ``predictions.jsonl`` across the launched ranks
    (:func:`cdbench.models.mllm.distributed.predict_sharded`: resumable part files, one merge), then
    rank 0 appends them to ``predictions.jsonl``. True on rank 0, which goes on to the metrics."""
    from cdbench.models.mllm.distributed import predict_sharded

    _check_run_record(out_dir, _run_record(info, ds_block))
    pred_path = out_dir / PREDICTIONS_FILE
    done = predictions_mapping(read_jsonl(pred_path), config, str(pred_path))
    ids = list(ds["pair_id"])
    todo = [i for i, p in enumerate(ids) if p not in done]
    merged = out_dir / "predictions.sharded.jsonl"
    result = predict_sharded(model, [pairs[i] for i in todo], merged, ids=[ids[i] for i in todo],
                             task="score" if config == "scores" else "describe", chunk_size=batch_size,
                             progress=progress)
    if result is None:
        return False
    field = "score" if config == "scores" else "description"
    append_jsonl(pred_path, ({"pair_id": r["id"], key: r[field]} for r in read_jsonl(merged)))
    merged.unlink()
    return True


def _run(model, info, out_dir, ds, ds_block, pairs, dataset_dir, config, split, key, batch_size, fit, n_boot, seed,
         device, progress, plot, title_note, on_batch, bertscore_model) -> EvaluationResult:
    _check_run_record(out_dir, _run_record(info, ds_block))
    pred_path = out_dir / PREDICTIONS_FILE
    repair_torn_tail(pred_path)
    try:
        done = predictions_mapping(read_jsonl(pred_path), config, str(pred_path))
    except ValueError as e:
        raise DataError(str(e)) from None
    ids = list(ds["pair_id"])
    # Pairs of one scene share images (SPCD: each image in about four pairs): grouping them makes
    # each call decode a shared image once. Predictions are keyed by pair id, so order is free.
    scenes = list(ds["scene"])
    todo = sorted((i for i, p in enumerate(ids) if p not in done), key=lambda i: (scenes[i], i))
    n_resumed = len(ids) - len(todo)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ids), initial=n_resumed, unit="pair", desc=f"{info['name']} {config}/{split}",
                   dynamic_ncols=True)
    try:
        for k, start in enumerate(range(0, len(todo), batch_size)):
            rows = todo[start:start + batch_size]
            batch = [pairs[i] for i in rows]
            if config == "scores":
                values = np.asarray(model.score(batch), dtype=np.float64).ravel()
                if values.size != len(rows):
                    raise ModelError(f"model {info['name']!r} returned {values.size} scores for {len(rows)} pairs")
                bad = np.flatnonzero(~np.isfinite(values))
                if bad.size:
                    raise ModelError(f"model {info['name']!r} returned a non-finite score ({values[bad[0]]}) for "
                                     f"pair {ids[rows[bad[0]]]!r}")
                records = [{"pair_id": ids[i], key: float(v)} for i, v in zip(rows, values)]
            else:
                texts = list(model.describe(batch))
                if len(texts) != len(rows):
                    raise ModelError(f"model {info['name']!r} returned {len(texts)} descriptions for {len(rows)} pairs")
                records = [{"pair_id": ids[i], key: str(t).strip() or "(empty)"} for i, t in zip(rows, texts)]
            append_jsonl(pred_path, records)
            for r in records:
                done[r["pair_id"]] = r[key]
            if bar is not None:
                bar.update(len(rows))
            if on_batch is not None:
                on_batch(k + 1)
    finally:
        if bar is not None:
            bar.close()
    ordered = [{"pair_id": p, key: done[p]} for p in ids]
    submission = {"schema_version": SUBMISSION_SCHEMA_VERSION, "model": info,
                  "dataset": {k: ds_block[k] for k in ("name", "config", "split", "fingerprint") if ds_block.get(k)},
                  "predictions": ordered, "versions": environment_versions(),
                  "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    atomic_write_json(out_dir / SUBMISSION_FILE, jsonable(submission))
    metrics = score_predictions(ordered, dataset_dir, config, split, fit=fit, n_boot=n_boot, seed=seed,
                                scale=info.get("scale"), model=info, bertscore_model=bertscore_model, device=device)
    atomic_write_json(out_dir / METRICS_FILE, metrics)
    table = metrics_table(metrics)
    atomic_write_text(out_dir / TABLE_FILE, f"{info['name']} on {ds_block['name']} {config}/{split}"
                      f"{title_note}\n\n{table}\n")
    if plot and config == "scores":
        labels = {r: a for r, a in zip(ids, ds["aligned"])}
        scores = {r: s for r, s in zip(ids, ds["score"])}
        keep = [p for p in ids if scores[p] is not None]
        scatter_plot(out_dir / SCATTER_FILE, np.array([done[p] for p in keep]),
                     np.array([scores[p] for p in keep], float), np.array([labels[p] for p in keep], bool),
                     metrics, f"{info['name']} on {ds_block['name']} {config}/{split}{title_note}")
    return EvaluationResult(out_dir, metrics, table, len(todo), n_resumed)
