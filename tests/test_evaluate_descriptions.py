"""`cdbench evaluate --config descriptions`: caption metrics and attribute accuracy per subset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cdbench.cli import main
from cdbench.data import ATTRIBUTES, SEVERITIES, format_description
from cdbench.errors import ModelError
from cdbench.evaluation import evaluate_model, score_predictions
from cdbench.models.base import CDModel

pytest.importorskip("pycocoevalcap")


class Describer(CDModel):
    """Answers with a fixed text per pair (the reference for some pairs, a wrong severity set for others)."""

    name = "fixed-describer"
    can_describe = True

    def __init__(self, answers: dict[str, str]):
        self.answers = answers

    def score(self, pairs, *, progress=False):
        raise NotImplementedError

    def describe(self, pairs, *, progress=False):
        return [self.answers[f"{Path(a).stem}+{Path(b).stem}"] for a, b in pairs]


class ScoreOnly(CDModel):
    name = "score-only"

    def score(self, pairs, *, progress=False):
        return [1.0] * len(pairs)


@pytest.fixture(scope="module")
def mspcd(tmp_path_factory):
    from cdbench.builders import build_mspcd
    from cdbench.data.dataset import open_split
    from cdbench.data.synthetic import make_synthetic_mspcd, make_synthetic_spcd

    tmp = tmp_path_factory.mktemp("mspcd")
    spcd = make_synthetic_spcd(tmp / "spcd", n_scenes=2, size=24)
    ann = make_synthetic_mspcd(tmp / "ann", spcd, n_describe=3)
    ds_dir = build_mspcd(spcd, ann, tmp / "ds", progress=False)
    ds = open_split(ds_dir, "descriptions", "test")
    return ds_dir, ds


def test_descriptions_evaluation(mspcd, tmp_path, capsys):
    if shutil.which("java") is None:
        pytest.skip("Java is not installed (METEOR)")
    ds_dir, ds = mspcd
    answers, wrong = {}, set()
    for k, row in enumerate(ds):
        if k % 3 == 2:  # every third pair: white balance one severity off, in the plain template
            sev = {a: SEVERITIES[row[a]] for a in ATTRIBUTES}
            sev["white_balance"] = SEVERITIES[(row["white_balance"] + 1) % 3]
            answers[row["pair_id"]] = format_description(sev)
            wrong.add(row["pair_id"])
        else:
            answers[row["pair_id"]] = row["reference"]
    r = evaluate_model(Describer(answers), ds_dir, "descriptions", "test", tmp_path, progress=False)
    m = r.metrics
    assert m["task"] == "descriptions" and set(m["subsets"]) == {"all", "aligned", "not_aligned"}
    allm = m["subsets"]["all"]
    n = len(ds)
    att = allm["attributes"]
    assert att["parse_rate"] == 1.0
    assert att["per_attribute"]["white_balance"]["accuracy"] == pytest.approx((n - len(wrong)) / n)
    assert att["per_attribute"]["overall_color"]["accuracy"] == 1.0
    assert att["exact_match"] == pytest.approx((n - len(wrong)) / n)
    cap = allm["captions"]
    assert 0 < cap["bleu4"] < 1 and 0 < cap["meteor"] < 1 and 0 < cap["bertscore_f1"] <= 1
    assert cap["settings"]["bertscore"]["model"] and cap["settings"]["bertscore"]["num_layers"] > 0
    assert m["subsets"]["aligned"]["n"] + m["subsets"]["not_aligned"]["n"] == n
    sub = json.loads((r.out_dir / "submission.json").read_text())
    assert all(set(p) == {"pair_id", "text"} for p in sub["predictions"])
    assert "BLEU-4" in r.table and "attr. macro-F1" in r.table
    # the same numbers from the submission through `cdbench score`
    again = score_predictions(r.out_dir / "submission.json", ds_dir, "descriptions", "test")
    assert again["subsets"]["all"]["attributes"] == att
    assert again["subsets"]["all"]["captions"]["bleu4"] == pytest.approx(cap["bleu4"], abs=1e-12)
    assert again["subsets"]["all"]["captions"]["meteor"] == pytest.approx(cap["meteor"], abs=1e-9)


def test_score_model_cannot_be_evaluated_on_descriptions(mspcd, tmp_path):
    ds_dir, _ = mspcd
    with pytest.raises(ModelError, match="cannot describe"):
        evaluate_model(ScoreOnly(), ds_dir, "descriptions", "test", tmp_path, progress=False)


def test_score_cli_rejects_score_predictions_for_descriptions(mspcd, tmp_path, capsys):
    ds_dir, ds = mspcd
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps({"pair_id": p, "score": 1.0}) + "\n" for p in ds["pair_id"]))
    assert main(["score", str(f), "--dataset", str(ds_dir), "--config", "descriptions"]) == 2
    assert "no 'text' field" in capsys.readouterr().err
