"""Attribute accuracy: parse rate, per-attribute accuracy and macro-F1 (vs hand counts and sklearn)."""

from __future__ import annotations

import math

import pytest

from cdbench.data import ATTRIBUTES, format_description
from cdbench.metrics import attribute_accuracy, macro_f1

REF = dict(zip(ATTRIBUTES, ["slight", "moderate", "severe", "slight", "moderate", "severe", "slight"]))


def test_perfect_descriptions_score_one():
    refs = [format_description(REF)] * 3
    r = attribute_accuracy(refs, refs)
    assert r["n"] == 3 and r["parse_rate"] == 1.0 and r["accuracy"] == 1.0 and r["exact_match"] == 1.0
    assert r["macro_f1"] == 1.0


def test_hand_counted_case():
    wrong = dict(REF, white_balance="severe")  # one attribute wrong
    partial = {a: REF[a] for a in ATTRIBUTES[:5]}  # last two attributes missing
    preds = [format_description(REF), format_description(wrong), format_description(partial)]
    r = attribute_accuracy(preds, [REF, REF, REF])
    assert r["parse_rate"] == pytest.approx(2 / 3)
    assert r["attribute_parse_rate"] == pytest.approx(19 / 21)
    wb = r["per_attribute"]["white_balance"]
    assert wb["accuracy"] == pytest.approx(2 / 3)
    # white balance: reference all 'slight'; predictions slight, severe, slight
    # F1(slight) = 2*2/(2*2+0+1) = 0.8; F1(severe) = 0 (one FP) -> macro 0.4
    assert wb["macro_f1"] == pytest.approx(0.4)
    assert wb["confusion"]["slight"] == {"slight": 2, "moderate": 0, "severe": 1, "unparsed": 0}
    dd = r["per_attribute"]["dark_details"]
    assert dd["parse_rate"] == pytest.approx(2 / 3) and dd["accuracy"] == pytest.approx(2 / 3)
    assert dd["confusion"]["severe"]["unparsed"] == 1
    assert r["exact_match"] == pytest.approx(1 / 3)
    assert r["accuracy"] == pytest.approx(sum(r["per_attribute"][a]["accuracy"] for a in ATTRIBUTES) / 7)


def test_macro_f1_equals_sklearn_on_present_classes():
    sklearn = pytest.importorskip("sklearn.metrics")
    ref = ["slight", "moderate", "severe", "slight", "moderate", "moderate", "slight"]
    pred = ["slight", "severe", "severe", None, "moderate", "slight", "slight"]
    expect = sklearn.f1_score(ref, [p or "none" for p in pred], labels=["slight", "moderate", "severe"],
                              average="macro", zero_division=0)
    assert macro_f1(ref, pred) == pytest.approx(expect)


def test_unparseable_text_and_bad_input():
    r = attribute_accuracy(["The images look the same to me.", ""], [REF, REF])
    assert r["parse_rate"] == 0 and r["accuracy"] == 0 and r["macro_f1"] == 0
    assert math.isnan(attribute_accuracy([], [])["accuracy"])
    with pytest.raises(ValueError, match="2 descriptions but 1"):
        attribute_accuracy(["a", "b"], [REF])
    with pytest.raises(ValueError, match="expected one of"):
        attribute_accuracy(["a"], [dict(REF, white_balance="huge")])


def test_released_style_answer_parses(shared_data):
    import json

    items = json.loads((shared_data / "m-spcd" / "depict_task" / "depict_test.json").read_text())[:10]
    answers = [it["human_answer"] for it in items]
    r = attribute_accuracy(answers, answers)
    assert r["parse_rate"] == 1.0 and r["accuracy"] == 1.0
