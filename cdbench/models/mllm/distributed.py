"""Predictions over several processes (``torchrun`` / ``accelerate launch``), merged into one file.

Each rank takes a contiguous shard of the pairs (rank r of w gets ``[n*r//w, n*(r+1)//w)``, the
sharding of ``datasets.distributed.split_dataset_by_node`` for a map-style dataset), appends its
predictions to its own part file as they are made (a killed run resumes where it stopped, also with
another number of ranks), and after a barrier rank 0 merges the parts in input order into
``out_path`` atomically: the same bytes a single process writes. Works with NCCL (GPUs) and gloo
(CPU); without a launcher it is a plain single-process run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cdbench.errors import DataError
from cdbench.io import append_jsonl, atomic_write_text, read_jsonl
from cdbench.models.base import CDModel, Pair

TASKS = ("score", "describe", "both")


def shard_range(n: int, rank: int, world_size: int, align: int = 1) -> range:
    """Indices of rank ``rank``'s contiguous shard of ``n`` items.

    With ``align=1`` shard sizes differ by at most one. With ``align=batch_size`` the shards are made
    of whole batches of the single-process run (sizes differ by at most one batch), so every rank
    forms exactly the batches one process would: same padding, same kernels, the same numbers.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    if align < 1:
        raise ValueError(f"align must be >= 1, got {align}")
    blocks = -(-n // align)
    return range(min(n, blocks * rank // world_size * align), min(n, blocks * (rank + 1) // world_size * align))


def init_distributed() -> tuple[int, int]:
    """``(rank, world_size)``: from an initialised process group, else from the launcher's environment
    (``RANK``/``WORLD_SIZE`` set by torchrun and accelerate), initialising the group (NCCL with CUDA,
    gloo otherwise); ``(0, 1)`` when not launched distributed."""
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def _barrier_group(world: int):
    """A gloo group with a long timeout for the barriers (a rank may wait for a slower rank's shard
    much longer than NCCL's default timeout, and a gloo barrier takes no GPU memory). Every rank
    must call this, in the same order."""
    if world <= 1:
        return None
    from datetime import timedelta

    import torch.distributed as dist

    return dist.new_group(backend="gloo", timeout=timedelta(hours=48))


def _barrier(group) -> None:
    if group is not None:
        import torch.distributed as dist

        dist.barrier(group=group)


def parts_dir(out_path: Path) -> Path:
    """Where the ranks' part files of ``out_path`` live (a hidden sibling folder)."""
    return out_path.parent / f".{out_path.name}.parts"


def _record_line(rec: dict) -> str:
    return json.dumps(rec, ensure_ascii=False, allow_nan=False) + "\n"


def predict_sharded(model: CDModel, pairs: Sequence[Pair], out_path: str | os.PathLike, *,
                    ids: Sequence[str] | None = None, task: str = "score", chunk_size: int | None = None,
                    progress: bool = False) -> Path | None:
    """Predict ``pairs`` with ``model`` across the launched ranks and write one JSONL file.

    Shards are whole batches of the single-process run (:func:`shard_range` with
    ``align=model.batch_size``), so the merged file equals the one a single process writes.

    Records, one per pair in input order: ``{"id", "score", "level_probs"?}`` (``task="score"``;
    ``level_probs`` when the model exposes them), ``{"id", "description"}`` (``"describe"``) or both
    fields (``"both"``). ``ids`` default to the pair indices as strings and must be unique. Every rank
    must call this with the same arguments; rank 0 returns the path, the other ranks None. The part
    files live next to ``out_path`` (on several nodes: a shared filesystem); a rerun skips the pairs
    already in them or in ``out_path``.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    out_path = Path(out_path)
    n = len(pairs)
    ids = [str(i) for i in range(n)] if ids is None else [str(i) for i in ids]
    if len(ids) != n:
        raise DataError(f"{len(ids)} ids for {n} pairs")
    if len(set(ids)) != n:
        raise DataError("pair ids must be unique")
    rank, world = init_distributed()
    group = _barrier_group(world)
    parts = parts_dir(out_path)
    parts.mkdir(parents=True, exist_ok=True)
    my_part = parts / f"rank{rank:05d}-of-{world:05d}.jsonl"
    sources = [out_path, *sorted(parts.glob("rank*.jsonl"))]  # a finished file counts as done too
    done = {r["id"] for p in sources for r in read_jsonl(p)}
    batch = max(1, int(getattr(model, "batch_size", 1) or 1))
    shard = shard_range(n, rank, world, align=batch)
    step = max(1, (chunk_size or 4 * batch) // batch) * batch  # whole batches, so batches stay aligned
    todo = [i for i in shard if ids[i] not in done]
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"rank {rank}/{world}", unit="pair", position=rank)
    for k in range(shard.start, shard.stop, step):
        idx = [i for i in range(k, min(k + step, shard.stop)) if ids[i] not in done]
        if not idx:
            continue
        chunk = [pairs[i] for i in idx]
        recs: list[dict[str, Any]] = [{"id": ids[i]} for i in idx]
        if task in ("score", "both"):
            probs = model.level_probabilities(chunk) if hasattr(model, "level_probabilities") else None
            if probs is not None:
                from cdbench.models.mllm.level_scoring import level_values

                scores = level_values(probs)
            else:
                scores = model.score(chunk)
            for j, r in enumerate(recs):
                r["score"] = float(scores[j])
                if probs is not None:
                    r["level_probs"] = [float(p) for p in probs[j]]
        if task in ("describe", "both"):
            for r, text in zip(recs, model.describe(chunk)):
                r["description"] = text
        append_jsonl(my_part, recs)
        if bar is not None:
            bar.update(len(idx))
    if bar is not None:
        bar.close()
    _barrier(group)
    result = None
    if rank == 0:
        by_id: dict[str, dict] = {}
        for p in [out_path, *sorted(parts.glob("rank*.jsonl"))]:
            for r in read_jsonl(p):
                by_id.setdefault(r["id"], r)
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise RuntimeError(f"{len(missing)} pairs have no prediction after the merge (first: {missing[0]})")
        atomic_write_text(out_path, "".join(_record_line(by_id[i]) for i in ids))
        shutil.rmtree(parts, ignore_errors=True)
        result = out_path
    _barrier(group)
    return result
