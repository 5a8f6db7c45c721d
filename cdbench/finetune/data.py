"""Training items from an M-SPCD dataset folder, and their encoding into supervised model inputs.

The M-SPCD training file (CD-Reasoning, IEEE TIP 2025) mixes two kinds of conversations about an
image pair, and so does :func:`load_training_items` from the ``scores`` and ``descriptions`` configs:

- a *scores* item: the human turn is one of the paraphrased questions with both images
  (``<img><img>\\n<question>``, the row's ``question``), the answer is
  ``"The color difference between these two images is <level>."`` (the level of the row's score);
- a *descriptions* item: the instruction with both images, answered by the reference description.

Both kinds are pooled into one training set and shuffled together every epoch, as the original
``LazySupervisedDataset`` + ``transformers.Trainer`` sampler do with the mixed file.

Only the answer is supervised (Q-Align / LLaVA ``preprocess_v1``): labels are the token ids of the
answer and the end-of-turn token, ``-100`` (:data:`IGNORE_INDEX`) on the prompt, on every image
placeholder and on padding. The model expands each image placeholder into its image rows with
``-100`` labels (see the mPLUG-Owl2 fixture README), so the loss is the mean cross-entropy over the
answer tokens only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cdbench.data import LEVELS
from cdbench.errors import DataError

IGNORE_INDEX = -100
"""Label value ignored by the cross-entropy (``torch.nn.CrossEntropyLoss(ignore_index=-100)``)."""


@dataclass(frozen=True)
class TrainItem:
    """One training conversation: a pair of images, a prompt and the supervised answer."""

    task: str
    """``scores`` or ``descriptions``."""
    pair_id: str
    prompt: str
    """The question / instruction text, without image placeholders."""
    answer: str
    row: int
    """Row of the item in its config's split (images are read lazily from there)."""


def score_answer(level: str | int) -> str:
    """The supervised answer of a scores item: ``"The color difference between these two images is <level>."``

    The level word is lower case, as in the aligned / not-aligned M-SPCD files and as the level
    scorer reads it (the softmax over the lower-case level-word tokens).
    """
    from cdbench.models.mllm.settings import SCORE_ANSWER_PREFIX

    word = LEVELS[int(level)] if isinstance(level, (int, np.integer)) else str(level).strip().lower()
    if word not in LEVELS:
        raise DataError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
    return f"{SCORE_ANSWER_PREFIX} {word}."


def _open(dataset_dir: Path, config: str, split: str):
    from cdbench.data.dataset import open_split

    return open_split(dataset_dir, config, split)


def _level_names(ds) -> list[str] | None:
    feat = ds.features.get("level")
    return list(getattr(feat, "names", []) or []) or None


def load_training_items(dataset_dir: str | os.PathLike, tasks: Sequence[str] = ("scores", "descriptions"),
                        split: str = "train", max_items: int | None = None) -> tuple[list[TrainItem], dict]:
    """The mixed training items of ``split`` and the opened splits ``{task: datasets.Dataset}``.

    A scores item is answered with the level the released annotation gives the pair
    (``released_level``, the training file's label) and, where there is none, the level of the
    score by the M-SPCD rule (``level``). Rows without a label (hidden score, empty reference) are
    skipped and counted in the returned splits' ``skipped`` entry. An empty question / instruction
    takes the default of the model settings (:mod:`cdbench.models.mllm.settings`).
    """
    from cdbench.models.mllm.settings import DESCRIBE_INSTRUCTION, SCORE_QUESTION

    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise DataError(f"{dataset_dir}: dataset folder not found (build it with `cdbench build m-spcd`)")
    items: list[TrainItem] = []
    splits: dict[str, Any] = {}
    skipped: dict[str, int] = {}
    for task in tasks:
        ds = _open(dataset_dir, task, split)
        splits[task] = ds
        text_cols = [c for c in ds.column_names if c not in ("image1", "image2")]
        table = ds.select_columns(text_cols).to_dict()
        n = len(ds)
        skipped[task] = 0
        if task == "scores":
            names = _level_names(ds) or list(LEVELS)
            for col in ("pair_id", "level"):
                if col not in table:
                    raise DataError(f"{dataset_dir}: config 'scores' split {split!r} has no column {col!r}")
            questions = table.get("question") or [""] * n
            released = table.get("released_level") or [None] * n
            for i in range(n):
                level = released[i] if released[i] is not None else table["level"][i]
                if level is None:
                    skipped[task] += 1
                    continue
                word = names[int(level)] if isinstance(level, (int, np.integer)) else str(level)
                items.append(TrainItem("scores", str(table["pair_id"][i]), (questions[i] or SCORE_QUESTION).strip(),
                                       score_answer(word), i))
        elif task == "descriptions":
            for col in ("pair_id", "reference"):
                if col not in table:
                    raise DataError(f"{dataset_dir}: config 'descriptions' split {split!r} has no column {col!r}")
            instructions = table.get("instruction") or [""] * n
            for i in range(n):
                ref = (table["reference"][i] or "").strip()
                if not ref:
                    skipped[task] += 1
                    continue
                items.append(TrainItem("descriptions", str(table["pair_id"][i]),
                                       (instructions[i] or DESCRIBE_INSTRUCTION).strip(), ref, i))
        else:
            raise DataError(f"unknown training task {task!r}; expected scores or descriptions")
    if not items:
        raise DataError(f"{dataset_dir}: no labelled training items in split {split!r} of {', '.join(tasks)}")
    if max_items is not None:
        items = items[:max_items]
    splits["skipped"] = skipped
    return items, splits


class TrainingSet:
    """A map-style dataset of encoded training items (``torch.utils.data.Dataset`` protocol).

    ``encoder(item, (image1, image2)) -> dict`` turns an item and its decoded uint8 images into
    model inputs with labels; images are read from the split rows (``image1``/``image2`` columns,
    or the ``image1_file``/``image2_file`` files of a labels-only build).
    """

    def __init__(self, items: Sequence[TrainItem], splits: dict, encoder, dataset_dir: str | os.PathLike):
        self.items = list(items)
        self.splits = splits
        self.encoder = encoder
        self.dataset_dir = Path(dataset_dir)

    def __len__(self) -> int:
        return len(self.items)

    def images(self, item: TrainItem) -> tuple[np.ndarray, np.ndarray]:
        from cdbench.data.images import load_image

        ds = self.splits[item.task]
        out = []
        for k in (1, 2):
            col = f"image{k}"
            try:
                if col in ds.column_names:
                    value = ds[item.row][col]
                    if value is None:
                        raise DataError(f"image {k} is missing")
                    img = load_image(value)
                else:
                    from cdbench.data.dataset import image_path

                    img = load_image(image_path(self.dataset_dir, ds[item.row][f"{col}_file"]))
            except DataError as e:
                raise DataError(f"{self.dataset_dir}: config {item.task!r} row {item.row} "
                                f"(pair {item.pair_id}): {e}") from None
            if img.dtype != np.uint8:
                img = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
            out.append(img)
        return out[0], out[1]

    def check_images(self) -> int:
        """Check that every image file of the items exists (before training, so a missing file is a
        one-line error naming it rather than a failure in a data-loading worker); returns the count."""
        from cdbench.data.dataset import image_path

        seen: set[str] = set()
        for task, ds in self.splits.items():
            if task == "skipped" or "image1_file" not in ds.column_names or "image1" in ds.column_names:
                continue
            rows = sorted({i.row for i in self.items if i.task == task})
            files = ds.select_columns(["image1_file", "image2_file"]).select(rows).to_dict()
            for k, row in enumerate(rows):
                for name in (files["image1_file"][k], files["image2_file"][k]):
                    if name in seen:
                        continue
                    try:
                        image_path(self.dataset_dir, name)
                    except DataError as e:
                        raise DataError(f"{e} (config {task!r}, row {row}; a --labels-only build has no images: "
                                        "train on a folder built with images)") from None
                    seen.add(name)
        return len(seen)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        return self.encoder(item, self.images(item))


def count_supervised(labels) -> int:
    """Number of supervised next-token targets in a batch of (unshifted) labels.

    A causal LM predicts ``labels[:, 1:]`` from the positions before them, so the first column
    never counts; padding carries :data:`IGNORE_INDEX`, and a negative label at an image
    placeholder (``-200``, which the model replaces by image rows labelled -100) is no target either.
    """
    return int((labels[:, 1:] >= 0).sum())


def pad_right(seqs: Sequence, value: int):
    """Stack 1-D int64 tensors right-padded with ``value`` (the training code pads right)."""
    import torch

    length = max(int(s.shape[0]) for s in seqs)
    out = torch.full((len(seqs), length), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :s.shape[0]] = s
    return out
