"""The synthetic SPCD / M-SPCD generators: layout, formats, determinism, and a usable score signal."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from cdbench.data import LEVELS, is_aligned, level_of_score, parse_description, parse_spcd_name
from cdbench.data.images import load_image
from cdbench.data.synthetic import (
    make_synthetic_mspcd,
    make_synthetic_spcd,
    read_synthetic_truth,
)


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("synthetic")
    spcd = make_synthetic_spcd(base / "spcd")
    mspcd = make_synthetic_mspcd(base / "m-spcd", spcd, with_train=True)
    return spcd, mspcd


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_spcd_layout_and_hidden_scores(roots):
    spcd, _ = roots
    names = sorted(p.name for p in (spcd / "images").iterdir())
    assert len(names) == 6 * 16
    for n in names:
        scene, source, index = parse_spcd_name(n)
        assert 1 <= source <= 7 and index >= 1
    train, test = _csv(spcd / "train_data.csv"), _csv(spcd / "test_data.csv")
    assert list(train[0]) == ["image1", "image2", "score"]
    assert train and test and all(r["score"] == "" for r in test)
    assert all(1.4 <= float(r["score"]) <= 15.4 for r in train)
    used = {r[c] for r in train + test for c in ("image1", "image2")}
    assert used <= set(names)
    assert any(not is_aligned(r["image1"], r["image2"]) for r in test)
    assert (spcd / "SYNTHETIC.md").read_text().startswith("# Synthetic data")
    truth = read_synthetic_truth(spcd)
    assert truth["synthetic"] is True and len(truth["pairs"]) == len(train) + len(test)
    # the CSV scores are the recorded true scores
    true = {(p["image1"], p["image2"]): p["score"] for p in truth["pairs"]}
    assert all(abs(float(r["score"]) - true[(r["image1"], r["image2"])]) < 1e-8 for r in train)


def test_visible_test_scores(tmp_path):
    root = make_synthetic_spcd(tmp_path / "s", n_scenes=2, hide_test_scores=False)
    assert all(r["score"] != "" for r in _csv(root / "test_data.csv"))


def test_deterministic_and_seeded(tmp_path, roots):
    spcd, _ = roots
    again = make_synthetic_spcd(tmp_path / "again")
    assert _digest(again) == _digest(spcd)
    other = make_synthetic_spcd(tmp_path / "other", seed=1)
    assert _digest(other)["train_data.csv"] != _digest(spcd)["train_data.csv"]


def test_capture_shift_and_edit_alignment(roots):
    spcd, _ = roots
    truth = read_synthetic_truth(spcd)["images"]
    assert truth["I0001_01_01.png"]["shift"] == [0, 0]
    assert any(truth[f"I0001_01_0{k}.png"]["shift"] != [0, 0] for k in (2, 3, 4))
    # edits are pixel-aligned colour transforms of capture 01_01: same shape, different colours
    a = load_image(spcd / "images" / "I0001_01_01.png").astype(float)
    b = load_image(spcd / "images" / "I0001_02_01.png").astype(float)
    assert a.shape == b.shape == (64, 64, 3)
    assert np.abs(a - b).mean() > 0.5


def test_scores_track_a_colour_difference_measure(roots):
    """CIEDE2000 (scikit-image, an independent implementation) correlates with the synthetic score
    clearly (SRCC > 0.5) but not perfectly (< 0.98): noise and misaligned captures."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    spcd, _ = roots
    pairs = read_synthetic_truth(spcd)["pairs"]
    cd = []
    for p in pairs:
        a = rgb2lab(load_image(spcd / "images" / p["image1"]))
        b = rgb2lab(load_image(spcd / "images" / p["image2"]))
        cd.append(deltaE_ciede2000(a, b).mean())
    srcc = spearmanr(cd, [p["score"] for p in pairs])[0]
    assert 0.5 < srcc < 0.98
    assert len({level_of_score(p["score"]) for p in pairs}) >= 3


def test_mspcd_formats_match_the_release(roots):
    spcd, mspcd = roots
    items = json.loads((mspcd / "score_task" / "test_data.json").read_text())
    aligned = json.loads((mspcd / "score_task" / "test_aligned_data.json").read_text())
    notaligned = json.loads((mspcd / "score_task" / "test_notaligned_data.json").read_text())
    assert len(items) == len(aligned) + len(notaligned) > 10
    it = items[0]
    assert list(it) == ["id", "image", "conversations", "gt_score"] and it["id"] == "000000000001"
    assert it["conversations"][0]["from"] == "human" and it["conversations"][0]["value"].startswith("<image><image>\n")
    level_word = it["conversations"][1]["value"].rsplit(" ", 1)[1].rstrip(".")
    assert level_word[0].isupper() and level_word.lower() in LEVELS
    assert all(is_aligned(*x["image"]) for x in aligned) and not any(is_aligned(*x["image"]) for x in notaligned)
    # the aligned/not-aligned levels follow the rule; test_data.json has exactly 2 other labels
    rule = {tuple(x["image"]): level_of_score(x["gt_score"]) for x in items}
    assert all(x["conversations"][1]["value"].endswith(f"is {rule[tuple(x['image'])]}.") for x in aligned + notaligned)
    released = [x["conversations"][1]["value"].rsplit(" ", 1)[1].rstrip(".").lower() for x in items]
    assert sum(r != rule[tuple(x["image"])] for r, x in zip(released, items)) == 2


def test_mspcd_descriptions_parse_exactly(roots):
    spcd, mspcd = roots
    truth = {(p["image1"], p["image2"]): p["severities"] for p in read_synthetic_truth(spcd)["pairs"]}
    dp = json.loads((mspcd / "depict_task" / "depict_test.json").read_text())
    al = json.loads((mspcd / "depict_task" / "depict_align_test.json").read_text())
    na = json.loads((mspcd / "depict_task" / "depict_not_align_test.json").read_text())
    assert [x["image"] for x in dp] == [x["image"] for x in al + na] and len(al) == len(na) == 4
    assert list(dp[0]) == ["question_id", "image", "text", "human_answer"]
    assert len({x["human_answer"].split(" ")[0] for x in dp}) > 1  # wording varies
    for x in dp:
        assert parse_description(x["human_answer"]) == truth[tuple(x["image"])]
    train = json.loads((mspcd / "train" / "train.json").read_text())
    kinds = {"gt_score" in x for x in train}
    assert kinds == {True, False}


def test_matches_released_keys(roots, shared_data):
    """The synthetic items have exactly the keys of the real released items."""
    _, mspcd = roots
    for rel in ("score_task/test_data.json", "score_task/test_aligned_data.json", "depict_task/depict_test.json"):
        real = json.loads((shared_data / "m-spcd" / rel).read_text())[0]
        ours = json.loads((mspcd / rel).read_text())[0]
        assert list(ours) == list(real)
        assert len(ours["id" if "id" in ours else "question_id"]) == 12


def test_mspcd_needs_a_synthetic_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="make_synthetic_spcd"):
        make_synthetic_mspcd(tmp_path / "m", tmp_path)
