"""Builds from the real released files in ../shared/data (skipped with a reason when absent).

The numbers are the facts measured on the released files (../shared/data/README.md).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from cdbench.builders import build_mspcd, build_spcd
from cdbench.data import ATTRIBUTES, LEVELS
from cdbench.data.dataset import dataset_info, open_split


@pytest.fixture(scope="module")
def mspcd(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "m-spcd"
    return build_mspcd(shared_data / "spcd", shared_data / "m-spcd", out, labels_only=True, progress=False)


def test_mspcd_scores(mspcd, shared_data):
    test = open_split(mspcd, "scores", "test")
    assert test.num_rows == 5975
    assert sum(test["aligned"]) == 3980 and sum(not a for a in test["aligned"]) == 1995
    rule, by_alignment, released = (np.array(test[c]) for c in ("level", "released_level_by_alignment",
                                                                   "released_level"))
    # the rule reproduces the aligned / not-aligned files' levels except one pair (x = 3.00015)
    exceptions = np.flatnonzero(rule != by_alignment)
    assert len(exceptions) == 1
    assert test[int(exceptions[0])]["level_value"] == pytest.approx(3.00015, abs=2e-5)
    assert int((released != by_alignment).sum()) == 518
    # the released items, in released order
    items = json.loads((shared_data / "m-spcd" / "score_task" / "test_data.json").read_text())
    assert test["pair_id"][:2] == [f"{x['image'][0][:-4]}+{x['image'][1][:-4]}" for x in items[:2]]
    assert np.allclose(test["score"], [x["gt_score"] for x in items], atol=1e-5)
    assert test["released_level"][0] == LEVELS.index(items[0]["conversations"][1]["value"].split()[-1][:-1].lower())
    comp = test["competition_split"]
    assert comp.count("train") == 2310 and comp.count("test") == 3665
    assert len(set(test["scene"])) == 199


def test_mspcd_descriptions_and_card(mspcd):
    desc = open_split(mspcd, "descriptions", "test")
    assert desc.num_rows == 100 and sum(desc["aligned"]) == 50
    assert all(all(r[a] is not None for a in ATTRIBUTES) for r in desc)
    card = (mspcd / "README.md").read_text()
    assert "test_data.json disagrees with the aligned / not-aligned files on 518 of 5975 pairs" in card
    assert "159 of the 199 test scenes also occur in the 10000 SPCD competition training pairs" in card
    assert "100 of 100 reference descriptions have all 7 attribute severities parsed" in card
    assert "DIFFERS" not in card  # every released file matches the recipe's checksum
    info = dataset_info(mspcd, verify=True)
    assert info["labels_only"] and info["num_rows"] == {"scores": {"test": 5975}, "descriptions": {"test": 100}}


def test_spcd_allow_missing_real_photos(shared_data, tmp_path):
    import datasets

    out = build_spcd(shared_data / "spcd", tmp_path / "spcd", allow_missing=True, progress=False)
    ds = datasets.load_dataset(str(out), "scores", cache_dir=str(tmp_path / "cache"))
    train, test = ds["train"], ds["test"]
    assert train.num_rows == 13 and test.num_rows == 22
    assert set(train["scene"]) == set(test["scene"]) == {"I0249"}
    assert all(s is not None for s in train["score"]) and all(s is None for s in test["score"])
    row = train[0]
    assert row["image1"].size == (1024, 1024) and row["image2"].size == (1024, 1024)
    # stored once, byte for byte, <= 1.05x the unique image bytes
    src = shared_data / "spcd" / "images"
    names = set(train["image1_file"]) | set(train["image2_file"]) | set(test["image1_file"]) | set(test["image2_file"])
    unique = sum((src / n).stat().st_size for n in names)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert total <= 1.05 * unique
    assert all((out / "images" / n).read_bytes() == (src / n).read_bytes() for n in names)
    card = (out / "README.md").read_text()
    assert "9987 scores/train pairs dropped (--allow-missing)" in card
