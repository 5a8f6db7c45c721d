"""Baseline specs: one YAML file per baseline in ``baselines/`` (read with ``yaml.safe_load``).

Fields: ``name`` (row label), ``model`` (a registry name for :func:`cdbench.create_model`; absent
when the model is a checkpoint folder), ``kind`` (formula | learned | mllm | other), ``settings``
(options for the model), ``weights`` (``option``: ``create_model(model, weights=PATH)``;
``folder``: ``create_model(PATH)``; absent: nothing to download or give), ``gpu`` (true for models
that need a GPU to run in reasonable time), ``reference`` (paper), ``tables`` (which tables of
``cdbench reproduce`` list it), and optionally ``published`` (the paper's numbers:
``{table: {subset: {metric: value}}}``), shown next to ours. The file stem is the baseline's id
(``--only ciede2000``, ``--weights cdnet=PATH``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdbench.errors import DataError

TABLES: dict[str, dict[str, str]] = {
    "spcd-measures": {"task": "scores", "title": "Colour-difference measures on SPCD (Wang et al., TPAMI 2023)"},
    "mspcd-scoring": {"task": "scores", "title": "Scoring colour differences on M-SPCD (Wang et al., TIP 2025)"},
    "mspcd-description": {"task": "descriptions",
                          "title": "Describing colour differences on M-SPCD (Wang et al., TIP 2025)"},
}
KINDS = ("formula", "learned", "mllm", "other")
_FIELDS = {"name", "model", "kind", "settings", "weights", "gpu", "reference", "tables", "published"}


@dataclass(frozen=True)
class BaselineSpec:
    id: str
    name: str
    kind: str
    tables: tuple[str, ...]
    reference: str
    model: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # "option" | "folder" | None
    gpu: bool = False
    published: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def default_baselines_dir() -> Path:
    """The baseline specs shipped inside the package (``cdbench/reproduce/baselines``; the checkout's
    top-level ``baselines/`` is a link to it). Pass another folder with ``--baselines``."""
    return Path(__file__).resolve().parent / "baselines"


def load_spec(path: str | os.PathLike) -> BaselineSpec:
    """One baseline spec; a one-line :class:`DataError` naming the file and field when it is wrong."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DataError(f"{path}: not a readable YAML baseline spec ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: a baseline spec is a YAML mapping")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise DataError(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
    for key in ("name", "kind", "reference", "tables"):
        if not raw.get(key):
            raise DataError(f"{path}: missing field {key!r}")
    if raw["kind"] not in KINDS:
        raise DataError(f"{path}: kind must be one of {', '.join(KINDS)}, got {raw['kind']!r}")
    tables = raw["tables"]
    if not isinstance(tables, list) or not all(t in TABLES for t in tables):
        raise DataError(f"{path}: tables must be a list of {', '.join(TABLES)}")
    weights = raw.get("weights")
    if weights not in (None, "option", "folder"):
        raise DataError(f"{path}: weights must be 'option' or 'folder', got {weights!r}")
    if raw.get("model") is None and weights != "folder":
        raise DataError(f"{path}: a spec without 'model' needs 'weights: folder'")
    if not isinstance(raw.get("settings") or {}, dict) or not isinstance(raw.get("published") or {}, dict):
        raise DataError(f"{path}: settings and published must be mappings")
    return BaselineSpec(id=path.stem, name=str(raw["name"]), kind=raw["kind"], tables=tuple(tables),
                        reference=str(raw["reference"]), model=raw.get("model"),
                        settings=dict(raw.get("settings") or {}),
                        weights=weights, gpu=bool(raw.get("gpu", False)), published=dict(raw.get("published") or {}),
                        path=path)


def load_specs(baselines_dir: str | os.PathLike | None = None, table: str | None = None) -> list[BaselineSpec]:
    """Every spec in ``baselines_dir`` (formulas, then learned models, then MLLMs; by id within a
    kind), optionally only those of ``table``."""
    root = Path(baselines_dir) if baselines_dir else default_baselines_dir()
    if not root.is_dir():
        raise DataError(f"{root}: baselines folder not found (give --baselines DIR)")
    if table is not None and table not in TABLES:
        raise DataError(f"unknown table {table!r}; one of {', '.join(TABLES)}")
    specs = sorted((load_spec(p) for p in root.glob("*.yaml")), key=lambda s: (KINDS.index(s.kind), s.id))
    return [s for s in specs if table is None or table in s.tables]
