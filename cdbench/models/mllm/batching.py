"""Batched LLM inference over image pairs: left padding, prefetching workers, OOM-aware batch size.

Pairs are cut into batches in their given order; each batch is decoded and preprocessed in a
background thread pool (``prepare``) while the model runs the previous one (``compute``), so the
accelerator never waits for PNG decoding or resizing. Sequences are padded on the LEFT, so the last
position of every row is its last prompt token (level scoring reads it; generation continues it).
On a CUDA out-of-memory error the batch is split in halves and the smaller size is kept for the
rest of the run (memory-aware batch size).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int):
    """Stack token sequences into ``(input_ids, attention_mask)`` int64 tensors, padded on the left."""
    import torch

    if not sequences:
        raise ValueError("left_pad needs at least one sequence")
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        if len(s):
            ids[i, width - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, width - len(s):] = 1
    return ids, mask


def positions_from_mask(attention_mask):
    """Position ids that ignore left padding: ``cumsum(mask) - 1`` (padding rows get 1, as HF does)."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.masked_fill(attention_mask == 0, 1)


def default_workers() -> int:
    """Threads for decoding/preprocessing: the CPUs this process may use, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def prefetch(batches: Sequence[T], prepare: Callable[[T], R], workers: int = 2, depth: int = 2) -> Iterator[R]:
    """``prepare(batch)`` for each batch in order, computed up to ``depth`` batches ahead in threads."""
    if workers <= 0:
        for b in batches:
            yield prepare(b)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cdbench-prep") as ex:
        pending: deque[Future] = deque()
        it = iter(batches)
        try:
            for b in it:
                pending.append(ex.submit(prepare, b))
                if len(pending) > depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class BatchRunner:
    """Runs ``compute(prepare(items[i:j]))`` over consecutive batches and concatenates the results.

    ``batch_size`` shrinks (halving) when a batch raises a CUDA out-of-memory error; the failed batch is
    recomputed in halves, so no result is lost and the outputs do not depend on where it happened.
    """

    def __init__(self, batch_size: int, workers: int | None = None, depth: int | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.workers = default_workers() if workers is None else int(workers)
        # batches prepared ahead: enough to keep the workers busy, few enough to bound host memory
        self.depth = depth if depth is not None else max(2, min(self.workers, 4))

    def run(self, items: Sequence[T], prepare: Callable[[Sequence[T]], Any], compute: Callable[[Any], list[R]],
            progress: bool = False, desc: str = "pairs") -> list[R]:
        n = len(items)
        bounds = [(i, min(i + self.batch_size, n)) for i in range(0, n, self.batch_size)]
        out: list[R] = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc=desc, unit="pair")
        try:
            for (i, j), prepared in zip(bounds, prefetch(bounds, lambda b: prepare(items[b[0]:b[1]]),
                                                         self.workers, self.depth)):
                out.extend(self._compute(items[i:j], prepared, prepare, compute))
                if bar is not None:
                    bar.update(j - i)
        finally:
            if bar is not None:
                bar.close()
        return out

    def _compute(self, chunk: Sequence[T], prepared: Any, prepare, compute) -> list[R]:
        if len(chunk) > self.batch_size:  # the size shrank after an earlier out-of-memory error
            del prepared
            return self._split(chunk, prepare, compute)
        try:
            res = list(compute(prepared))
        except RuntimeError as e:
            if not _is_oom(e) or len(chunk) == 1:
                raise
            import torch

            del prepared
            torch.cuda.empty_cache()
            self.batch_size = max(1, len(chunk) // 2)
            return self._split(chunk, prepare, compute)
        if len(res) != len(chunk):
            raise RuntimeError(f"batch of {len(chunk)} pairs gave {len(res)} results")
        return res

    def _split(self, chunk: Sequence[T], prepare, compute) -> list[R]:
        out: list[R] = []
        step = self.batch_size  # fixed here: a sub-batch that still fails shrinks it for the next ones
        for k in range(0, len(chunk), step):
            sub = chunk[k:k + step]
            out.extend(self._compute(sub, prepare(sub), prepare, compute))
        return out


def auto_batch_size(device: Any, tokens_per_pair: int, hidden_size: int, num_layers: int, kv_width: int,
                    dtype_bytes: int = 2, max_batch: int = 64, cpu_batch: int = 8, headroom: float = 0.7) -> int:
    """A batch size that fits the free accelerator memory (CUDA) or a small fixed one (CPU).

    Per pair: the KV cache (``2 * layers * tokens * kv_width``) plus the activations of one layer
    (about ``16 * tokens * hidden``: attention in/out, the MLP's gated intermediate, norms), in
    ``dtype_bytes``; ``headroom`` of the free memory is used. An out-of-memory error during the run
    still halves the batch (:class:`BatchRunner`).
    """
    import torch

    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return cpu_batch
    free, _total = torch.cuda.mem_get_info(dev)
    per_pair = tokens_per_pair * (2 * num_layers * kv_width + 16 * hidden_size) * dtype_bytes
    n = int(free * headroom // max(per_pair, 1))
    return max(1, min(max_batch, 2 ** max(0, n.bit_length() - 1)))
