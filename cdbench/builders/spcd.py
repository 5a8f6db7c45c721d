"""``cdbench build spcd``: SPCD (Wang et al., TPAMI 2023) as a Hugging Face dataset folder.

Source: an SPCD root with ``images/`` and the score CSVs of the recipe ``builders/spcd.yaml``
(``train_data.csv``: the 10,000 scored competition training pairs; ``test_data.csv``: the 20,000
pairs with hidden scores). Output: config ``scores`` with splits train / test as released.
"""

from __future__ import annotations

import os
from pathlib import Path

from cdbench.builders.card import render_card
from cdbench.builders.features import SCORE_COLUMNS, scores_features
from cdbench.builders.folder import write_dataset_folder
from cdbench.builders.recipe import card_template, load_recipe
from cdbench.builders.rows import (
    check_sources,
    drop_missing_images,
    scene_report,
    score_record,
    split_counts,
)
from cdbench.builders.sources import PairRegistry, read_score_csv
from cdbench.data.synthetic import SYNTHETIC_MARKER
from cdbench.errors import DataError


def build_spcd(root: str | os.PathLike, out: str | os.PathLike, *, labels_only: bool = False,
               allow_missing: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    """Build the SPCD folder ``out`` from the SPCD root ``root``; returns ``out``."""
    recipe = load_recipe("spcd")
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise DataError(f"{root}: SPCD root not found")
    if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
        raise DataError(f"{out}: the output folder must not be inside the SPCD root (inputs are never modified)")
    registry = PairRegistry()
    splits: dict[tuple[str, str], list[dict]] = {}
    files = {}
    for src in recipe["sources"]:
        path = root / src["file"]
        files[src["file"]] = (path, src.get("sha256"))
        rows = read_score_csv(path, registry)
        splits[("scores", src["split"])] = [score_record(r, competition_split=src["competition_split"]) for r in rows]
    dropped: list[str] = []
    image_root = root / recipe.get("images", "images")
    if not labels_only:
        splits, dropped = drop_missing_images(splits, image_root, allow_missing)
    record = _record(recipe, root, splits, files, dropped, image_root, labels_only)
    features = scores_features(with_images=not labels_only)
    template = card_template(recipe)
    return write_dataset_folder(
        out, name=recipe["name"], splits={k: (rows, features) for k, rows in splits.items()},
        image_root=None if labels_only else image_root, overwrite=overwrite,
        render_card=lambda rec: render_card(recipe, rec, template), record=record, progress=progress)


def _record(recipe: dict, root: Path, splits: dict, files: dict, dropped: list[str], image_root: Path,
            labels_only: bool) -> dict:
    hidden = {split: sum(r["score"] is None for r in rows) for (_, split), rows in splits.items()}
    notes = [f"{split}: {n} pairs with hidden scores kept (score, level, level_value None)"
             for split, n in hidden.items() if n]
    exts = sorted({Path(r[c]).suffix.lower() for rows in splits.values() for r in rows
                   for c in ("image1_file", "image2_file")}) or [".png"]
    return {
        "pretty_name": recipe.get("pretty_name"),
        "synthetic": (root / SYNTHETIC_MARKER).is_file(),
        "image_extensions": exts,
        "sources": check_sources(files),
        "report": {
            "columns": {"scores": ["pair_id", *([] if labels_only else ["image1", "image2"]), *SCORE_COLUMNS[1:]]},
            "counts": {"scores": {split: split_counts("scores", rows) for (_, split), rows in splits.items()}},
            "scenes": scene_report(splits),
            "dropped": dropped + notes,
            "agreement": [],
        },
    }
