"""Building SPCD / M-SPCD folders from synthetic sources, and reading them back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cdbench.builders import build_mspcd, build_spcd
from cdbench.data import ATTRIBUTES, LEVELS, level_index_of_score, parse_description, severity_index
from cdbench.data.dataset import dataset_info, image_pairs, image_path, open_split
from cdbench.data.synthetic import make_synthetic_mspcd, make_synthetic_spcd, read_synthetic_truth
from cdbench.errors import DataError


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    base = tmp_path_factory.mktemp("src")
    spcd = make_synthetic_spcd(base / "SPCD", n_scenes=4)
    ann = make_synthetic_mspcd(base / "M-SPCD", spcd, with_train=True)
    return spcd, ann


@pytest.fixture(scope="module")
def built(src, tmp_path_factory):
    spcd, ann = src
    out = tmp_path_factory.mktemp("out")
    return {
        "spcd": build_spcd(spcd, out / "spcd", progress=False),
        "m-spcd": build_mspcd(spcd, ann, out / "m-spcd", progress=False),
        "labels": build_mspcd(spcd, ann, out / "labels", labels_only=True, progress=False),
    }


def _load(path, config, tmp_path, **kw):
    import datasets

    return datasets.load_dataset(str(path), config, cache_dir=str(tmp_path / "hf-cache"), **kw)


def test_spcd_loads_with_images_and_hidden_scores(built, src, tmp_path):
    spcd_src, _ = src
    ds = _load(built["spcd"], "scores", tmp_path)
    assert set(ds) == {"train", "test"}
    tr, te = ds["train"], ds["test"]
    assert tr.features["image1"].__class__.__name__ == "Image"
    assert tr.features["level"].names == list(LEVELS)
    row = tr[0]
    assert row["image1"].size == (64, 64)
    # the decoded pixels are those of the source file
    import numpy as np
    from PIL import Image

    with Image.open(spcd_src / "images" / row["image1_file"]) as im:
        assert np.array_equal(np.asarray(row["image1"].convert("RGB")), np.asarray(im.convert("RGB")))
    assert row["pair_id"] == f"{Path(row['image1_file']).stem}+{Path(row['image2_file']).stem}"
    assert all(s is None for s in te["score"]) and all(lv is None for lv in te["level"])
    assert set(tr["competition_split"]) == {"train"} and set(te["competition_split"]) == {"test"}
    truth = {(p["image1"], p["image2"]): p["score"] for p in read_synthetic_truth(spcd_src)["pairs"]}
    for r in tr.select_columns(["image1_file", "image2_file", "score", "level", "level_value", "scene_fold"]):
        s = truth[(r["image1_file"], r["image2_file"])]
        assert r["score"] == pytest.approx(s, abs=1e-5)  # float32
        assert r["level"] == level_index_of_score(s)
        assert 0 <= r["scene_fold"] < 5


def test_released_order_and_folds_per_scene(built, src):
    spcd_src, _ = src
    import csv

    with open(spcd_src / "train_data.csv") as f:
        released = [(r["image1"], r["image2"]) for r in csv.DictReader(f)]
    tr = open_split(built["spcd"], "scores", "train")
    assert list(zip(tr["image1_file"], tr["image2_file"])) == released
    folds: dict[str, set] = {}
    for scene, fold in zip(tr["scene"], tr["scene_fold"]):
        folds.setdefault(scene, set()).add(fold)
    assert all(len(f) == 1 for f in folds.values())


def test_mspcd_configs_and_labels(built, src, tmp_path):
    spcd_src, ann = src
    scores = _load(built["m-spcd"], "scores", tmp_path)
    desc = _load(built["m-spcd"], "descriptions", tmp_path)
    assert set(scores) == {"train", "test"} and set(desc) == {"train", "test"}
    test = scores["test"]
    items = json.loads((ann / "score_task" / "test_data.json").read_text())
    assert len(test) == len(items)
    assert test["pair_id"] == [f"{Path(x['image'][0]).stem}+{Path(x['image'][1]).stem}" for x in items]
    assert test["question"][0] == items[0]["conversations"][0]["value"].split("\n", 1)[1]
    # level = rule; released labels kept: 2 synthetic disagreements with test_data.json
    assert sum(a != b for a, b in zip(test["level"], test["released_level"])) == 2
    assert test["level"] == test["released_level_by_alignment"]
    assert sum(test["aligned"]) == len(json.loads((ann / "score_task" / "test_aligned_data.json").read_text()))
    dtest = desc["test"]
    dp = json.loads((ann / "depict_task" / "depict_test.json").read_text())
    assert dtest["reference"] == [x["human_answer"] for x in dp]
    for row, x in zip(dtest, dp):
        parsed = parse_description(x["human_answer"])
        assert [row[a] for a in ATTRIBUTES] == [severity_index(parsed[a]) for a in ATTRIBUTES]
        assert row["image1"].size == (64, 64)
    assert desc["train"].num_rows > 0 and scores["train"].num_rows > 0


def test_card_reports(built):
    card = (built["m-spcd"] / "README.md").read_text()
    assert card.startswith("---\n") and "config_name: scores" in card and "config_name: descriptions" in card
    assert "SYNTHETIC DATA" in card
    assert "test_data.json disagrees with the aligned / not-aligned files on 2 of" in card
    assert "the level rule reproduces the aligned / not-aligned files' levels for" in card
    assert "| test |" in card and "scenes also occur in" in card
    assert "DIFFERS from the release" in card  # synthetic files are not the released ones


def test_load_by_name_from_the_working_directory(built, tmp_path, monkeypatch):
    import shutil

    work = tmp_path / "work"
    shutil.copytree(built["m-spcd"], work / "m-spcd")
    monkeypatch.chdir(work)
    ds = _load("m-spcd", "scores", tmp_path, split="test")
    assert ds.num_rows == dataset_info(work / "m-spcd")["num_rows"]["scores"]["test"]
    assert ds[0]["image2"].size == (64, 64)


def test_images_stored_once_bytes_unchanged(built, src):
    spcd_src, _ = src
    out = built["m-spcd"]
    used = set()
    for c in ("scores", "descriptions"):
        for s in ("train", "test"):
            ds = open_split(out, c, s)
            used |= set(ds["image1_file"]) | set(ds["image2_file"])
    stored = sorted(p.name for p in (out / "images").iterdir())
    assert stored == sorted(used)
    unique_bytes = sum((spcd_src / "images" / n).stat().st_size for n in used)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    # <= 1.05x the unique image bytes (labels included) at SPCD's 1 MB per image; tiny images here:
    assert sum((out / "images" / n).stat().st_size for n in stored) == unique_bytes
    assert total - unique_bytes < 0.05 * unique_bytes + 200_000
    for n in stored:
        assert (out / "images" / n).read_bytes() == (spcd_src / "images" / n).read_bytes()


def test_labels_only(built, tmp_path):
    lab = built["labels"]
    assert not (lab / "images").exists()
    ds = _load(lab, "scores", tmp_path, split="test")
    assert "image1" not in ds.column_names and "image1_file" in ds.column_names
    full, lo = dataset_info(built["m-spcd"]), dataset_info(lab)
    assert lo["labels_only"] and not full["labels_only"]
    assert lo["label_fingerprint"] == full["label_fingerprint"]  # same labels
    assert lo["num_rows"] == full["num_rows"]
    with pytest.raises(DataError, match="labels-only"):
        image_path(lab, ds[0]["image1_file"])


def test_build_twice_identical(src, built, tmp_path):
    spcd, ann = src
    again = build_mspcd(spcd, ann, tmp_path / "again", progress=False)
    assert _files(again) == _files(built["m-spcd"])
    assert oct((again / "cdbench.json").stat().st_mode & 0o777) == oct(0o644)


def test_open_split_and_info(built):
    out = built["m-spcd"]
    ds = open_split(out, "scores", "test")
    assert "image1" not in ds.column_names and "image1_file_name" not in ds.column_names
    assert ds.features["level"].names == list(LEVELS) and ds.features["score"].dtype == "float32"
    info = dataset_info(out, verify=True)
    assert info["name"] == "m-spcd" and info["configs"] == {"scores": ["train", "test"],
                                                            "descriptions": ["train", "test"]}
    assert info["splits"] == ["train", "test"] and info["num_images"] > 0
    assert info["cdbench_version"] and len(info["label_fingerprint"]) == 64
    pairs = image_pairs(out, ds)
    assert len(pairs) == ds.num_rows and all(p.is_file() for pair in pairs for p in pair)
    with pytest.raises(DataError, match="no config 'bogus'; available: descriptions, scores"):
        open_split(out, "bogus")
    with pytest.raises(DataError, match="no split 'validation'; available: train, test"):
        open_split(out, "scores", "validation")
    with pytest.raises(DataError, match="not a cdbench dataset folder"):
        open_split(out / "images")
    for bad in ("/etc/passwd", "../cdbench.json", "x/../../README.md"):
        with pytest.raises(DataError):
            image_path(out, bad)


def test_verify_detects_edited_labels(built, tmp_path):
    import shutil

    import pyarrow.parquet as pq

    copy = tmp_path / "edited"
    shutil.copytree(built["spcd"], copy)
    t = pq.read_table(copy / "scores-train.parquet")
    pq.write_table(t.slice(1), copy / "scores-train.parquet")
    with pytest.raises(DataError, match="fingerprint mismatch"):
        dataset_info(copy, verify=True)


def test_cli_build_and_overwrite(src, tmp_path, capsys):
    from cdbench.cli import main

    spcd, _ = src
    out = tmp_path / "cli"
    assert main(["build", "spcd", "--root", str(spcd), "--out", str(out), "--no-progress"]) == 0
    assert "scores/train" in capsys.readouterr().out
    assert main(["build", "spcd", "--root", str(spcd), "--out", str(out), "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["build", "spcd", "--root", str(spcd), "--out", str(out), "--no-progress", "--overwrite",
                 "--labels-only"]) == 0
    assert dataset_info(out)["labels_only"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_inputs_untouched(src, built):
    spcd, ann = src
    for root in (spcd, ann):
        for p in root.rglob("*"):
            assert not p.name.endswith(".tmp")
    assert not (spcd / "cdbench.json").exists() and os.access(spcd / "train_data.csv", os.R_OK)
