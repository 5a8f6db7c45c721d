"""Rows of the built configs and the statistics of the card, from the validated released items."""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from pathlib import Path

from cdbench.builders.sources import DescriptionRow, ScoreRow, sha256_file
from cdbench.data.attributes import ATTRIBUTES, SEVERITIES, parse_description, severity_index
from cdbench.data.levels import LEVELS, level_index_of_value, score_to_level_value
from cdbench.data.pairs import is_aligned, pair_id, scene_fold, scene_of

_scene_of = lru_cache(maxsize=1 << 16)(scene_of)  # per image name: SPCD reuses each image ~4 times


def score_record(r: ScoreRow, *, competition_split: str | None, released_level: int | None = None,
                 released_level_by_alignment: int | None = None) -> dict:
    """One ``scores`` row: the level rule applied to the score; released labels kept as they are."""
    scene = _scene_of(r.image1)
    if r.score is None:
        level = value = None
    else:
        value = score_to_level_value(r.score)
        if not math.isfinite(value):
            level = None
        else:
            level = int(level_index_of_value(value))
    return {
        "pair_id": pair_id(r.image1, r.image2),
        "image1_file": r.image1,
        "image2_file": r.image2,
        "scene": scene,
        "aligned": is_aligned(r.image1, r.image2),
        "score": r.score,
        "level": level,
        "level_value": value if value is None or math.isfinite(value) else None,
        "question": r.question,
        "scene_fold": scene_fold(scene),
        "competition_split": competition_split,
        "released_level": released_level,
        "released_level_by_alignment": released_level_by_alignment,
    }


def description_record(r: DescriptionRow, *, competition_split: str | None) -> dict:
    """One ``descriptions`` row: the seven severities parsed from the reference description."""
    scene = _scene_of(r.image1)
    parsed = parse_description(r.reference)
    row = {
        "pair_id": pair_id(r.image1, r.image2),
        "image1_file": r.image1,
        "image2_file": r.image2,
        "scene": scene,
        "aligned": is_aligned(r.image1, r.image2),
        "instruction": r.instruction,
        "reference": r.reference,
    }
    for a in ATTRIBUTES:
        row[a] = severity_index(parsed[a])
    row["scene_fold"] = scene_fold(scene)
    row["competition_split"] = competition_split
    return row


def split_counts(config: str, rows: list[dict]) -> dict:
    """Pairs, alignment and (scores) levels of one split, for the card."""
    out = {"pairs": len(rows), "aligned": sum(r["aligned"] for r in rows),
           "not_aligned": sum(not r["aligned"] for r in rows)}
    if config == "scores":
        out["scored"] = sum(r["score"] is not None for r in rows)
        c = Counter(LEVELS[r["level"]] for r in rows if r["level"] is not None)
        out["levels"] = {lv: c.get(lv, 0) for lv in LEVELS}
    return out


def severity_counts(rows: list[dict]) -> dict[str, list[int]]:
    """Per attribute: counts of slight, moderate, severe and unparsed (None)."""
    out = {}
    for a in ATTRIBUTES:
        c = Counter(r[a] for r in rows)
        out[a] = [c.get(i, 0) for i in range(len(SEVERITIES))] + [c.get(None, 0)]
    return out


def scene_report(splits: dict[tuple[str, str], list[dict]]) -> list[str]:
    """Lines on the scenes of each split and the scenes shared between splits."""
    scenes: dict[str, set[str]] = {}
    for (_config, split), rows in splits.items():
        scenes.setdefault(split, set()).update(r["scene"] for r in rows)
    lines = [f"{split}: {len(s)} scenes" for split, s in scenes.items()]
    names = list(scenes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = scenes[a] & scenes[b]
            lines.append(f"{len(shared)} of the {len(scenes[b])} {b} scenes also occur in {a}"
                         + (" (the released split is not scene-disjoint)" if shared else ""))
    return lines


def check_sources(files: dict[str, tuple[Path, str | None]]) -> dict[str, dict]:
    """SHA-256 of each source file against the recipe's release checksum (a mismatch is reported,
    not an error: a corrected or synthetic release still builds)."""
    out = {}
    for rel, (path, expected) in sorted(files.items()):
        digest = sha256_file(path)
        check = "no release checksum" if not expected else ("matches the release" if digest == expected
                                                             else "DIFFERS from the release")
        out[rel] = {"sha256": digest, "expected_sha256": expected, "check": check}
    return out


def missing_report(missing: list[str], dropped_pairs: int, what: str) -> str:
    """One card line on images missing from the source and the pairs dropped for them."""
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    return (f"{dropped_pairs} {what} dropped (--allow-missing): {len(missing)} image(s) missing from the source "
            f"images/ folder ({shown})")


def drop_missing_images(splits: dict[tuple[str, str], list[dict]], image_root: Path, allow_missing: bool
                        ) -> tuple[dict[tuple[str, str], list[dict]], list[str]]:
    """Check that every referenced image is a file under ``image_root``. Missing images stop the
    build with a one-line error (how many, the first few names) unless ``allow_missing``, which
    drops the pairs that use them and returns card lines saying how many and why."""
    from cdbench.builders.folder import find_missing
    from cdbench.errors import DataError

    if not image_root.is_dir():
        raise DataError(f"{image_root}: image folder not found (or build with --labels-only)")
    names = {r[c] for rows in splits.values() for r in rows for c in ("image1_file", "image2_file")}
    missing = find_missing(image_root, names)
    if not missing:
        return splits, []
    if not allow_missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(f"{len(missing)} of {len(names)} referenced images are missing from {image_root} ({shown}); "
                        "use --allow-missing to drop their pairs, or --labels-only")
    gone = set(missing)
    kept: dict[tuple[str, str], list[dict]] = {}
    lines = []
    for key, rows in splits.items():
        kept[key] = [r for r in rows if r["image1_file"] not in gone and r["image2_file"] not in gone]
        n = len(rows) - len(kept[key])
        if n:
            lines.append(missing_report(missing, n, f"{key[0]}/{key[1]} pairs"))
    if not any(kept.values()):
        raise DataError(f"no pair left: every pair uses one of the {len(missing)} missing images in {image_root}")
    return kept, lines
