"""``cdbench build m-spcd``: M-SPCD (Wang et al., TIP 2025) as a Hugging Face dataset folder.

Sources (recipe ``builders/m-spcd.yaml``): the annotation root holds ``score_task/test_data.json``
(scored test pairs, conversation format), ``test_aligned_data.json`` / ``test_notaligned_data.json``
(the same pairs split by alignment, with their own level labels), ``depict_task/depict_test.json``
(+ align / not-align files; expert descriptions) and, when present, ``train/*.json`` (score and
description items mixed). The SPCD root gives the images and, when its score CSVs are there,
``competition_split`` and a score cross-check. Output: configs ``scores`` and ``descriptions``
(splits train when present, test). The level rule is applied to every score; the released labels
are kept (``released_level``, ``released_level_by_alignment``) and their disagreements reported.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cdbench.builders.card import render_card
from cdbench.builders.features import DESCRIPTION_COLUMNS, SCORE_COLUMNS, descriptions_features, scores_features
from cdbench.builders.recipe import card_template, load_recipe
from cdbench.builders.rows import (
    check_sources,
    description_record,
    drop_missing_images,
    scene_report,
    score_record,
    severity_counts,
    split_counts,
)
from cdbench.builders.sources import (
    PairRegistry,
    ScoreRow,
    read_depict_json,
    read_score_csv,
    read_score_json,
    read_train_json,
)
from cdbench.data.attributes import ATTRIBUTES
from cdbench.data.levels import LEVELS
from cdbench.data.pairs import is_aligned, scene_of
from cdbench.data.synthetic import SYNTHETIC_MARKER
from cdbench.errors import DataError


def build_mspcd(spcd_root: str | os.PathLike, annotations_root: str | os.PathLike, out: str | os.PathLike, *,
                labels_only: bool = False, allow_missing: bool = False, overwrite: bool = False,
                progress: bool = True) -> Path:
    """Build the M-SPCD folder ``out``; returns ``out``."""
    recipe = load_recipe("m-spcd")
    spcd_root, ann, out = Path(spcd_root), Path(annotations_root), Path(out)
    for root, what in ((spcd_root, "SPCD root"), (ann, "M-SPCD annotation root")):
        if not root.is_dir():
            raise DataError(f"{root}: {what} not found")
        if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
            raise DataError(f"{out}: the output folder must not be inside the {what} (inputs are never modified)")
    src = recipe["sources"]
    files: dict[str, tuple[Path, str | None]] = {}

    def source(key: str, required: bool = True) -> Path | None:
        spec = src[key]
        path = ann / spec["file"]
        if not path.is_file():
            if required:
                raise DataError(f"{path}: M-SPCD annotation file not found (expected by builders/m-spcd.yaml)")
            return None
        files[spec["file"]] = (path, spec.get("sha256"))
        return path

    agreement: list[str] = []
    notes: list[str] = []
    competition = _competition_splits(spcd_root, recipe, files, notes)

    # scores / test
    test_scores = read_score_json(source("scores"), PairRegistry())
    by_alignment = _alignment_labels(source("scores_aligned", False), source("scores_not_aligned", False),
                                     test_scores, agreement)
    splits: dict[tuple[str, str], list[dict]] = {}
    train_scores: list[ScoreRow] = []
    train_desc = []
    train_files = sorted(ann.glob(src["train"]["glob"]))
    if train_files:
        score_reg, desc_reg = PairRegistry(), PairRegistry()
        for path in train_files:
            s, d = read_train_json(path, score_reg, desc_reg)
            train_scores += s
            train_desc += d
            files[path.relative_to(ann).as_posix()] = (path, None)
    if train_scores:
        splits[("scores", "train")] = [_score_row(r, competition, None) for r in train_scores]
    splits[("scores", "test")] = [_score_row(r, competition, by_alignment) for r in test_scores]
    _report_agreement(splits[("scores", "test")], agreement, competition)

    # descriptions / test
    desc = read_depict_json(source("descriptions"), PairRegistry())
    _check_description_alignment(source("descriptions_aligned", False), source("descriptions_not_aligned", False),
                                 desc, agreement)
    if train_desc:
        splits[("descriptions", "train")] = [description_record(r, competition_split=_comp(competition, r))
                                             for r in train_desc]
    splits[("descriptions", "test")] = [description_record(r, competition_split=_comp(competition, r))
                                        for r in desc]
    for (config, split), rows in splits.items():
        if config == "descriptions":
            full = sum(all(r[a] is not None for a in ATTRIBUTES) for r in rows)
            agreement.append(f"descriptions/{split}: {full} of {len(rows)} reference descriptions have all "
                             f"{len(ATTRIBUTES)} attribute severities parsed")

    dropped: list[str] = []
    image_root = spcd_root / recipe.get("images", "images")
    if not labels_only:
        splits, dropped = drop_missing_images(splits, image_root, allow_missing)
    splits = {k: splits[k] for k in sorted(splits, key=lambda k: (k[0] != "scores", k[1] != "train"))}
    record = _record(recipe, spcd_root, ann, splits, files, dropped + notes, agreement, labels_only)
    record["report"]["scenes"] += _competition_scene_lines(splits, competition)
    feats = {"scores": scores_features(not labels_only), "descriptions": descriptions_features(not labels_only)}
    template = card_template(recipe)
    from cdbench.builders.folder import write_dataset_folder

    return write_dataset_folder(
        out, name=recipe["name"], splits={k: (rows, feats[k[0]]) for k, rows in splits.items()},
        image_root=None if labels_only else image_root, overwrite=overwrite,
        render_card=lambda rec: render_card(recipe, rec, template), record=record, progress=progress)


def _competition_splits(spcd_root: Path, recipe: dict, files: dict, notes: list[str]) -> dict:
    """(image1, image2) -> (competition split, score) from the SPCD CSVs present in the SPCD root."""
    out: dict[tuple[str, str], tuple[str, float | None]] = {}
    registry = PairRegistry()
    for spec in recipe["sources"]["spcd_csv"]:
        path = spcd_root / spec["file"]
        if not path.is_file():
            notes.append(f"SPCD {spec['file']} not in the SPCD root: competition_split is None for its pairs")
            continue
        files[f"spcd/{spec['file']}"] = (path, _spcd_checksum(spec["file"]))
        for r in read_score_csv(path, registry):
            out[(r.image1, r.image2)] = (spec["competition_split"], r.score)
    return out


def _competition_scene_lines(splits: dict, competition: dict) -> list[str]:
    """Scenes of each M-SPCD split that also occur in the SPCD competition training pairs."""
    spcd_train = {scene_of(a) for (a, _), (split, _) in competition.items() if split == "train"}
    if not spcd_train:
        return []
    lines = []
    for (config, split), rows in splits.items():
        if config == "scores":
            scenes = {r["scene"] for r in rows}
            lines.append(f"{len(scenes & spcd_train)} of the {len(scenes)} {split} scenes also occur in the "
                         f"{sum(s == 'train' for s, _ in competition.values())} SPCD competition training pairs "
                         "(train_data.csv)")
    return lines


def _spcd_checksum(name: str) -> str | None:
    for s in load_recipe("spcd")["sources"]:
        if s["file"] == name:
            return s.get("sha256")
    return None


def _comp(competition: dict, r) -> str | None:
    hit = competition.get((r.image1, r.image2)) or competition.get((r.image2, r.image1))
    return hit[0] if hit else None


def _score_row(r: ScoreRow, competition: dict, by_alignment: dict | None) -> dict:
    return score_record(r, competition_split=_comp(competition, r), released_level=r.released_level,
                        released_level_by_alignment=None if by_alignment is None
                        else by_alignment.get((r.image1, r.image2)))


def _alignment_labels(aligned_path: Path | None, not_aligned_path: Path | None, test: list[ScoreRow],
                      agreement: list[str]) -> dict[tuple[str, str], int]:
    """Levels of the aligned / not-aligned files by pair, checked against test_data.json: the same
    pairs, the same scores, and the alignment rule of the pair names."""
    if aligned_path is None or not_aligned_path is None:
        agreement.append("the aligned / not-aligned score files are absent: released_level_by_alignment is None")
        return {}
    test_by_pair = {(r.image1, r.image2): r for r in test}
    labels: dict[tuple[str, str], int] = {}
    registry = PairRegistry()
    for path, want_aligned in ((aligned_path, True), (not_aligned_path, False)):
        for r in read_score_json(path, registry):
            t = _subset_row(r, test_by_pair, want_aligned, path, "test_data.json")
            if t.score != r.score:
                raise DataError(f"{r.source}: gt_score {r.score} differs from test_data.json ({t.score})")
            labels[(r.image1, r.image2)] = r.released_level
    if len(labels) != len(test):
        agreement.append(f"{len(test) - len(labels)} test_data.json pairs are in neither the aligned nor the "
                         "not-aligned file")
    return labels


def _report_agreement(rows: list[dict], agreement: list[str], competition: dict) -> None:
    n = len(rows)
    by_align = [r for r in rows if r["released_level_by_alignment"] is not None]
    if by_align:
        miss = [r for r in by_align if r["released_level_by_alignment"] != r["level"]]
        shown = "; ".join(f"{r['pair_id']} (score {r['score']:.6g}, x = {r['level_value']:.5f}: rule "
                          f"{LEVELS[r['level']]}, file {LEVELS[r['released_level_by_alignment']]})" for r in miss[:3])
        agreement.append(f"the level rule reproduces the aligned / not-aligned files' levels for "
                         f"{len(by_align) - len(miss)} of {len(by_align)} pairs"
                         + (f"; exceptions: {shown}" if miss else ""))
        dis = sum(r["released_level"] != r["released_level_by_alignment"] for r in by_align)
        agreement.append(f"test_data.json disagrees with the aligned / not-aligned files on {dis} of {len(by_align)} "
                         "pairs (same scores, other labels): `released_level` keeps test_data.json's label, "
                         "`level` is the rule")
    rule = sum(r["released_level"] != r["level"] for r in rows)
    agreement.append(f"the level rule differs from test_data.json's label on {rule} of {n} pairs")
    comp = [r for r in rows if r["competition_split"] is not None]
    if competition:
        counts = {s: sum(r["competition_split"] == s for r in comp) for s in ("train", "test")}
        agreement.append(f"{len(comp)} of {n} test pairs are SPCD pairs: {counts['train']} in the SPCD "
                         f"competition training file, {counts['test']} in its test file")
        same = [r for r in comp if r["competition_split"] == "train"]
        diffs = []
        for r in same:
            hit = competition.get((r["image1_file"], r["image2_file"])) or \
                competition.get((r["image2_file"], r["image1_file"]))
            if hit and hit[1] is not None and not np.isclose(hit[1], r["score"], rtol=0, atol=1e-6):
                diffs.append(r["pair_id"])
        agreement.append(f"scores identical to the SPCD training file for {len(same) - len(diffs)} of {len(same)} pairs"
                         + (f"; different: {', '.join(diffs[:5])}" if diffs else ""))


def _check_description_alignment(aligned_path: Path | None, not_aligned_path: Path | None, desc: list,
                                 agreement: list[str]) -> None:
    if aligned_path is None or not_aligned_path is None:
        return
    pairs = {(r.image1, r.image2): r for r in desc}
    n = {}
    for path, want in ((aligned_path, True), (not_aligned_path, False)):
        rows = read_depict_json(path, PairRegistry())
        for r in rows:
            _subset_row(r, pairs, want, path, "depict_test.json")
        n[want] = len(rows)
    same_text = "the same pairs" if n[True] + n[False] == len(desc) else "a subset of the pairs"
    agreement.append(f"depict_test.json: {n[True]} aligned + {n[False]} not-aligned pairs, {same_text} as the "
                     "depict align / not-align files")


def _record(recipe: dict, spcd_root: Path, ann: Path, splits: dict, files: dict, dropped: list[str],
            agreement: list[str], labels_only: bool) -> dict:
    img = [] if labels_only else ["image1", "image2"]
    sev = {split: severity_counts(rows) for (config, split), rows in splits.items() if config == "descriptions"}
    exts = sorted({Path(r[c]).suffix.lower() for rows in splits.values() for r in rows
                   for c in ("image1_file", "image2_file")}) or [".png"]
    counts: dict[str, dict] = {}
    for (config, split), rows in splits.items():
        counts.setdefault(config, {})[split] = split_counts(config, rows)
    return {
        "pretty_name": recipe.get("pretty_name"),
        "synthetic": (spcd_root / SYNTHETIC_MARKER).is_file(),
        "image_extensions": exts,
        "sources": check_sources(files),
        "report": {
            "columns": {"scores": ["pair_id", *img, *SCORE_COLUMNS[1:]],
                        "descriptions": ["pair_id", *img, *DESCRIPTION_COLUMNS[1:]]},
            "counts": counts,
            "severity_counts": sev,
            "scenes": scene_report({k: v for k, v in splits.items() if k[0] == "scores"}),
            "dropped": dropped,
            "agreement": agreement,
        },
    }


def _subset_row(r, whole: dict, want_aligned: bool, path: Path, whole_name: str):
    """The row of the whole file (``whole_name``) for a row ``r`` of an aligned / not-aligned subset
    file ``path``; a one-line error when it is absent there or in the wrong subset."""
    t = whole.get((r.image1, r.image2))
    if t is None:
        raise DataError(f"{r.source}: pair {r.image1}, {r.image2} is not in {whole_name}")
    if is_aligned(r.image1, r.image2) != want_aligned:
        raise DataError(f"{r.source}: pair {r.image1}, {r.image2} is "
                        f"{'not ' if want_aligned else ''}aligned by its image names but listed in {path.name}")
    return t
