"""Reading a dataset folder built by ``cdbench build`` without decoding any image.

A built folder (see :mod:`cdbench.builders`) looks like::

    OUT/README.md                    dataset card (YAML ``configs``): datasets.load_dataset(OUT, "scores")
    OUT/cdbench.json                 build record: name, configs/splits/files/counts, label fingerprint, version
    OUT/scores-<split>.parquet       one file per config and split (labels, file names)
    OUT/descriptions-<split>.parquet
    OUT/images/<file name>           each image once, bytes as released (absent with --labels-only)

The parquet files carry ``image1_file_name`` / ``image2_file_name`` (``images/<name>``), which the
``imagefolder`` loader of ``datasets`` turns into lazily decoded ``Image`` columns ``image1`` /
``image2``. Evaluation, the leaderboard and training use this module instead: :func:`open_split`
gives the label columns (``image1_file`` / ``image2_file`` hold the bare file names) and
:func:`image_path` resolves a name to its file, so models get file paths (fast decoding, each
unique image once) instead of PIL images.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from cdbench.errors import DataError

INFO_FILE = "cdbench.json"
"""The build record that marks a cdbench dataset folder."""

FORMAT_NAME = "cdbench-dataset"
FORMAT_VERSION = 1
IMAGES_DIR = "images"
IMAGE_COLUMNS = ("image1", "image2")
"""The lazily decoded Image columns of ``datasets.load_dataset`` (absent with --labels-only)."""
IMAGE_FILE_NAME_COLUMNS = ("image1_file_name", "image2_file_name")
"""Parquet columns (``images/<name>``) that the imagefolder loader turns into :data:`IMAGE_COLUMNS`."""


def split_file_name(config: str, split: str) -> str:
    """File name of one config/split inside a built folder, e.g. ``scores-test.parquet``."""
    return f"{config}-{split}.parquet"


def read_build_record(dataset_dir: str | os.PathLike) -> dict:
    """The ``cdbench.json`` of a built folder; a one-line DataError when the folder is not one."""
    root = Path(dataset_dir)
    info = root / INFO_FILE
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found (build one with `cdbench build spcd|m-spcd ... --out DIR`)")
    if not info.is_file():
        raise DataError(f"{root} is not a cdbench dataset folder (no {INFO_FILE}); "
                        "build one with `cdbench build spcd|m-spcd ... --out DIR`")
    try:
        record = json.loads(info.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{info}: unreadable build record ({e})") from None
    if (not isinstance(record, dict) or record.get("format") != FORMAT_NAME
            or not isinstance(record.get("configs"), dict)):
        raise DataError(f"{info}: not a cdbench build record (expected format {FORMAT_NAME!r})")
    if int(record.get("format_version", 0)) > FORMAT_VERSION:
        raise DataError(f"{info}: format version {record.get('format_version')} is newer than this cdbench "
                        f"reads ({FORMAT_VERSION}); upgrade cdbench")
    return record


def _split_file(root: Path, record: dict, config: str, split: str) -> Path:
    configs = record["configs"]
    if config not in configs:
        raise DataError(f"{root}: no config {config!r}; available: {', '.join(sorted(configs)) or 'none'}")
    splits = configs[config].get("splits", {})
    if split not in splits:
        raise DataError(f"{root}: config {config!r} has no split {split!r}; available: "
                        f"{', '.join(splits) or 'none'}")
    name = splits[split].get("file", split_file_name(config, split))
    path = _inside(root, name, what="split file")
    if not path.is_file():
        raise DataError(f"{path}: split file missing (the folder is incomplete; rebuild it)")
    return path


def _inside(root: Path, name: str, what: str) -> Path:
    """``root / name`` for a relative name that stays inside ``root``; a DataError otherwise."""
    if not isinstance(name, str) or not name:
        raise DataError(f"{root}: empty {what} name")
    if "\x00" in name or PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() \
            or PureWindowsPath(name).drive:
        raise DataError(f"{root}: {what} name {name!r} is absolute; names must be relative to the dataset")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        raise DataError(f"{root}: {what} name {name!r} leaves the dataset folder ('..')")
    path = root.joinpath(*parts)
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        raise DataError(f"{root}: {what} name {name!r} resolves outside the dataset folder") from None
    return path


def open_split(dataset_dir: str | os.PathLike, config: str = "scores", split: str = "test") -> Any:
    """One split of a built folder as an in-memory ``datasets.Dataset`` of its label columns.

    No image is decoded or read: ``image1_file`` / ``image2_file`` hold the file names (resolve
    them with :func:`image_path`); the ``ClassLabel`` / ``float32`` features are those of
    ``datasets.load_dataset(dataset_dir, config)``. A one-line DataError names the folder and lists
    the available configs / splits when the request does not exist.
    """
    import datasets
    import pyarrow.parquet as pq

    root = Path(dataset_dir)
    record = read_build_record(root)
    path = _split_file(root, record, config, split)
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for damaged files
        raise DataError(f"{path}: unreadable parquet file ({e})") from None
    features = datasets.Features.from_arrow_schema(table.schema)
    drop = [c for c in IMAGE_FILE_NAME_COLUMNS if c in table.column_names]
    if drop:
        table = table.drop_columns(drop)
        features = datasets.Features({k: v for k, v in features.items() if k not in drop})
    table = table.replace_schema_metadata(None)
    info = datasets.DatasetInfo(features=features, dataset_name=record.get("name"), config_name=config)
    return datasets.Dataset(datasets.table.InMemoryTable(table.cast(features.arrow_schema)), info=info,
                            split=datasets.NamedSplit(split))


def dataset_info(dataset_dir: str | os.PathLike, verify: bool = False) -> dict:
    """Summary of a built folder: ``name``, ``configs`` (config -> splits), ``splits`` (all split
    names), ``num_rows``
    (config -> split -> rows), ``labels_only``, ``label_fingerprint`` (SHA-256 of the label
    content, the same for a full and a --labels-only build), ``cdbench_version`` and ``card``.

    With ``verify`` the fingerprint is recomputed from the files and a mismatch is a DataError.
    """
    root = Path(dataset_dir)
    record = read_build_record(root)
    configs = {c: list(v.get("splits", {})) for c, v in record["configs"].items()}
    info = {
        "name": record.get("name"),
        "path": str(root),
        "configs": configs,
        "splits": list(dict.fromkeys(s for splits in configs.values() for s in splits)),
        "num_rows": {c: {s: int(v["splits"][s].get("num_rows", 0)) for s in configs[c]}
                     for c, v in record["configs"].items()},
        "labels_only": bool(record.get("labels_only", False)),
        "label_fingerprint": record.get("label_fingerprint"),
        "cdbench_version": record.get("cdbench_version"),
        "num_images": record.get("num_images"),
        "card": str(root / "README.md"),
    }
    if verify:
        tables = {(c, s): _read_labels(_split_file(root, record, c, s)) for c in configs for s in configs[c]}
        actual = label_fingerprint(tables)
        if actual != info["label_fingerprint"]:
            raise DataError(f"{root}: label fingerprint mismatch (recorded {info['label_fingerprint']}, "
                            f"files give {actual}): the folder was modified after the build")
    return info


def _read_labels(path: Path):
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return table.drop_columns([c for c in IMAGE_FILE_NAME_COLUMNS if c in table.column_names])


def label_fingerprint(tables: dict[tuple[str, str], Any]) -> str:
    """SHA-256 over the label columns of every (config, split) table, in sorted order.

    Each table (pyarrow, image columns excluded) is hashed as canonical JSON lines of its rows
    (sorted keys, floats written by Python's repr after float32 rounding as stored), so the
    fingerprint does not depend on the parquet writer or the pyarrow version.
    """
    h = hashlib.sha256()
    for (config, split) in sorted(tables):
        table = tables[(config, split)]
        table = table.drop_columns([c for c in IMAGE_FILE_NAME_COLUMNS if c in table.column_names])
        h.update(f"{config}/{split}\n".encode())
        h.update((",".join(table.column_names) + "\n").encode())
        for batch in table.to_batches(max_chunksize=65536):
            for row in batch.to_pylist():
                h.update(json.dumps(row, sort_keys=True, ensure_ascii=True, allow_nan=True).encode())
                h.update(b"\n")
    return h.hexdigest()


def image_path(dataset_dir: str | os.PathLike, file_name: str, must_exist: bool = True) -> Path:
    """Path of an image of a built folder from its ``image1_file`` / ``image2_file`` name.

    Absolute names and names that leave the image folder (``..``, links pointing out) are a
    DataError; with ``must_exist`` a missing file is a DataError too (a --labels-only build has
    no images: point models at the SPCD ``images/`` folder instead).
    """
    root = Path(dataset_dir)
    images = root / IMAGES_DIR
    path = _inside(images, file_name, what="image")
    if must_exist and not path.is_file():
        if not images.is_dir():
            raise DataError(f"{root}: no {IMAGES_DIR}/ folder (built with --labels-only?); cannot resolve "
                            f"image {file_name!r}")
        raise DataError(f"{path}: image file not found")
    return path


def image_pairs(dataset_dir: str | os.PathLike, ds: Any, must_exist: bool = True
                ) -> list[tuple[Path, Path]]:
    """``(path1, path2)`` for every row of a split from :func:`open_split`, ready for
    :func:`cdbench.data.images.load_pairs` or ``CDModel.score``."""
    names1: Sequence[str] = ds["image1_file"]
    names2: Sequence[str] = ds["image2_file"]
    cache: dict[str, Path] = {}

    def resolve(name: str) -> Path:
        p = cache.get(name)
        if p is None:
            p = cache[name] = image_path(dataset_dir, name, must_exist=must_exist)
        return p

    return [(resolve(a), resolve(b)) for a, b in zip(names1, names2)]
