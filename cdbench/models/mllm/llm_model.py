"""The common part of the LLM colour-difference models: batching, level scoring, generation.

:class:`LLMCDModel` implements ``score`` (Q-Align level value) and ``describe`` (text generation)
over batches of pairs; a subclass only turns decoded image pairs into model inputs
(``_prepare``) and runs its model (``_last_logits``, ``_generate``). The mPLUG-Owl2 family
(:mod:`cdbench.models.mllm.mplug`) and any Hugging Face image-text-to-text model
(:mod:`cdbench.models.mllm.hf_vlm`) share it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cdbench.data.images import load_pairs
from cdbench.errors import ModelError
from cdbench.models.base import CDModel, Pair
from cdbench.models.mllm.batching import BatchRunner
from cdbench.models.mllm.level_scoring import level_probabilities, level_values
from cdbench.models.mllm.sampling import pair_key, per_pair_sampling_kwargs
from cdbench.models.mllm.settings import MLLMSettings

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16", "half": "float16",
           "bfloat16": "bfloat16", "bf16": "bfloat16"}


def resolve_device(device: str | None) -> str:
    """The torch device to run on: ``device`` as given (a bare ``"cuda"`` under ``torchrun`` /
    ``accelerate launch`` means this rank's GPU, ``cuda:<LOCAL_RANK>``), else that GPU or ``cuda`` when
    one is available, else ``cpu``."""
    import torch

    local = os.environ.get("LOCAL_RANK")
    if device and str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} requested but CUDA is not available here (use device='cpu')")
    if device and str(device) != "cuda":
        return str(device)
    if device == "cuda" or torch.cuda.is_available():
        return f"cuda:{int(local)}" if local is not None else "cuda"
    return "cpu"


def resolve_dtype(dtype: Any, device: str):
    """A torch dtype: as given, else bfloat16 on CUDA (the speed path) and float32 on CPU."""
    import torch

    if dtype is None or dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    key = _DTYPES.get(str(dtype).lower().replace("torch.", ""))
    if key is None:
        raise ModelError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16")
    return getattr(torch, key)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """An (H, W, 3) image as uint8 (float images in [0, 1] are scaled and rounded)."""
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def pin_tensors(inputs: Any) -> Any:
    """CPU tensors of a dict-like batch moved to pinned memory (asynchronous host-to-GPU copies)."""
    try:
        items = inputs.items()
    except AttributeError:
        return inputs
    for k, v in list(items):
        if hasattr(v, "pin_memory") and getattr(v, "device", None) is not None and v.device.type == "cpu":
            inputs[k] = v.pin_memory()
    return inputs


class LLMCDModel(CDModel):
    """Level scoring and description with a multimodal LLM, batched; subclasses adapt one model family."""

    kind = "mllm"
    scale = "level"
    can_describe = True

    def __init__(self, folder: str | os.PathLike, settings: MLLMSettings, *, device: str | None = None,
                 dtype: Any = None, batch_size: int | str = "auto", workers: int | None = None,
                 attn_implementation: str = "sdpa", name: str | None = None):
        self.folder = Path(folder)
        self.prompt_settings = settings
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.attn_implementation = attn_implementation
        self.name = name or self.folder.name
        self._batch_size_option = batch_size
        self.workers = workers
        self._runner: BatchRunner | None = None

    # --- what a subclass provides -------------------------------------------------------------
    def _prepare(self, images: list[tuple[np.ndarray, np.ndarray]], task: str) -> Any:
        """Model inputs (CPU tensors) for decoded pairs; ``task`` is ``"score"`` or ``"describe"``.
        Runs in worker threads."""
        raise NotImplementedError

    def _last_logits(self, inputs: Any):
        """(B, V) logits at the last prompt position."""
        raise NotImplementedError

    def _generate(self, inputs: Any, pair_keys: list[int] | None = None) -> list[str]:
        """One decoded continuation per row."""
        raise NotImplementedError

    def _auto_batch_size(self) -> int:
        return 8

    @property
    def level_token_ids(self) -> list[int]:
        raise NotImplementedError

    # --- the CDModel interface ----------------------------------------------------------------
    @property
    def preferred_chunk(self) -> int:
        """Pairs per call from the evaluation runner: several batches, so that image preprocessing
        of the next batch overlaps the model (the runner saves after every call)."""
        return 256 if self.device.type == "cuda" else 32

    @property
    def batch_size(self) -> int:
        """Pairs per forward pass ("auto" at creation: from the free accelerator memory; halves on OOM)."""
        return self._get_runner().batch_size

    @batch_size.setter
    def batch_size(self, value: int | str) -> None:
        self._batch_size_option = value
        self._runner = None

    def _get_runner(self) -> BatchRunner:
        if self._runner is None:
            bs = self._batch_size_option
            bs = self._auto_batch_size() if bs in (None, "auto") else int(bs)
            self._runner = BatchRunner(bs, workers=self.workers)
        return self._runner

    def _run(self, pairs: Sequence[Pair], task: str, compute, progress: bool) -> list:
        pairs = list(pairs)
        for k, p in enumerate(pairs):
            if not isinstance(p, (tuple, list)) or len(p) != 2:
                raise ModelError(f"pair {k}: expected (image1, image2), got {type(p).__name__}")
        if not pairs:
            return []

        pin = str(self.device).startswith("cuda")

        keyed = task == "describe" and self._samples_per_pair()

        def prepare(chunk):
            decoded = [(to_uint8(a), to_uint8(b)) for a, b in load_pairs(chunk, workers=2)]
            inputs = self._prepare(decoded, task)
            inputs = pin_tensors(inputs) if pin else inputs
            return (inputs, [pair_key(a, b) for a, b in decoded] if keyed else None)

        return self._get_runner().run(pairs, prepare, compute, progress=progress,
                                      desc=f"{self.name} {task}")

    def level_probabilities(self, pairs: Sequence[Pair], *, progress: bool = False) -> np.ndarray:
        """(N, 5) probabilities of the level words (softmax over their last-position logits)."""
        import torch

        ids = self.level_token_ids

        def compute(prepared):
            with torch.inference_mode():
                return list(level_probabilities(self._last_logits(prepared[0]), ids))

        rows = self._run(pairs, "score", compute, progress)
        return np.stack(rows) if rows else np.zeros((0, len(ids)))

    def score(self, pairs: Sequence[Pair], *, progress: bool = False) -> np.ndarray:
        """Q-Align level value ``5 * sum_i p_i * w_i`` per pair, on the M-SPCD level scale 0..5."""
        return level_values(self.level_probabilities(pairs, progress=progress)) if len(pairs) else np.zeros(0)

    def describe(self, pairs: Sequence[Pair], *, progress: bool = False) -> list[str]:
        """A description of the colour differences per pair (greedy unless ``do_sample``).

        Sampling (``num_beams=1``) is per pair (:mod:`cdbench.models.mllm.sampling`): a pair's text depends
        on ``seed`` and the pair, not on the batch, the order or the number of ranks. Beam sampling
        (``num_beams > 1``) uses ``transformers``' own generator, seeded once per call.
        """
        import torch

        if self.prompt_settings.do_sample and not self._samples_per_pair():
            torch.manual_seed(self.prompt_settings.seed)

        def compute(prepared):
            with torch.inference_mode():
                return [t.strip() for t in self._generate(*prepared)]

        return self._run(pairs, "describe", compute, progress)

    def _samples_per_pair(self) -> bool:
        s = self.prompt_settings
        return s.do_sample and s.num_beams == 1

    def _generation_kwargs(self, pair_keys: list[int] | None, prompt_width: int) -> dict[str, Any]:
        """``generate`` options: the settings' (greedy / beam), or per-pair sampling when keys are given."""
        if pair_keys is None:
            return self.prompt_settings.generation_kwargs()
        return per_pair_sampling_kwargs(self.prompt_settings, pair_keys, prompt_width)

    def settings(self) -> dict[str, Any]:
        return {**self.prompt_settings.to_dict(), "checkpoint": self.folder.name,
                "dtype": str(self.dtype).replace("torch.", ""), "attn_implementation": self.attn_implementation}
