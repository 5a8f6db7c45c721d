"""Submission schema and validation: round trip, every rejection, hypothesis-made malformed files."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdbench.cli import main
from cdbench.leaderboard.schema import MAX_DEPTH, MAX_TEXT_CHARS, submission_schema
from cdbench.leaderboard.validate import ReferenceSplit, parse_submission, validate_submission

REPO = Path(__file__).resolve().parents[1]
PAIRS = [f"I{s:04d}_01_0{i}+I{s:04d}_0{j}_01" for s in range(1, 4) for i in (1, 2) for j in (2, 3)]
REF = ReferenceSplit(name="spcd", config="scores", split="test", pair_ids=PAIRS, fingerprint="f" * 64)
DREF = ReferenceSplit(name="m-spcd", config="descriptions", split="test", pair_ids=PAIRS[:4])


def scores_sub(**model) -> dict:
    return {"schema_version": 1,
            "model": {"name": "ciede2000", "kind": "formula", "url": "https://doi.org/10.1002/col.20070",
                      "description": "CIEDE2000, mean over pixels", "parameters": None, **model},
            "dataset": {"name": "spcd", "config": "scores", "split": "test", "fingerprint": "f" * 64},
            "predictions": [{"pair_id": p, "score": 1.5 + i * 0.25} for i, p in enumerate(PAIRS)]}


def text_sub() -> dict:
    return {"schema_version": 1, "model": {"name": "cd-reasoning", "kind": "mllm"},
            "dataset": {"name": "m-spcd", "config": "descriptions", "split": "test"},
            "predictions": [{"pair_id": p, "text": "The white balance differs slightly."} for p in PAIRS[:4]]}


def problems(doc, ref=REF) -> list[str]:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    result = validate_submission(data, ref)
    for line in result.lines():  # every problem is exactly one line
        assert "\n" not in line and "\r" not in line and line.strip() == line
    return result.lines()


# --- the schema ---------------------------------------------------------------------------------

def test_schema_is_draft_2020_12_and_one_file():
    schema = submission_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    top = REPO / "leaderboard" / "submission.schema.json"
    packaged = REPO / "cdbench" / "leaderboard" / "submission.schema.json"
    assert top.resolve() == packaged.resolve()  # one file: the top-level path links to the packaged one


def test_round_trip_valid_submissions():
    for sub, ref in ((scores_sub(), REF), (text_sub(), DREF)):
        text = json.dumps(sub, indent=1, ensure_ascii=False)
        result = validate_submission(text.encode(), ref)
        assert result.ok, result.lines()
        assert result.submission == sub
        assert json.loads(json.dumps(result.submission)) == sub
        jsonschema.validate(sub, submission_schema())  # the published schema alone accepts it too


def test_accepts_what_cdbench_evaluate_writes():
    # the layout of cdbench.evaluation.runner's submission.json: model = CDModel.info(), versions, created
    sub = scores_sub()
    sub["model"] = {"name": "ciede2000", "kind": "formula", "scale": "difference", "can_describe": False,
                    "settings": {"pooling": "mean", "kL": 1.0, "device": "cpu"}}
    sub["versions"] = {"python": "3.11.9", "cdbench": "0.1.0", "torch": "2.13.0"}
    sub["created"] = "2026-11-26T12:00:00Z"
    sub["metrics"] = {"srcc": 0.99}  # ignored by the board, but allowed
    assert problems(sub) == []


def test_scores_and_integers_accepted_bool_rejected():
    sub = scores_sub()
    sub["predictions"][0]["score"] = 3
    assert problems(sub) == []
    sub["predictions"][0]["score"] = True
    assert problems(sub) == ["predictions[0].score: expected a number, got a boolean"]


# --- each rejection --------------------------------------------------------------------------------

def _mutated(f, base=scores_sub):
    sub = base()
    f(sub)
    return sub


REJECTIONS = [
    ("string score", _mutated(lambda s: s["predictions"][2].update(score="3.5")),
     "predictions[2].score: expected a number, got a string ('3.5')"),
    ("null score", _mutated(lambda s: s["predictions"][1].update(score=None)),
     "predictions[1].score: expected a number, got null"),
    ("missing score", _mutated(lambda s: s["predictions"][4].pop("score")),
     "predictions[4]: missing field 'score'"),
    ("text in a scores submission", _mutated(lambda s: s["predictions"][0].update(text="x")),
     "predictions[0]: unknown field 'text'"),
    ("unknown top-level field", _mutated(lambda s: s.update(extra=1)), "(top level): unknown field 'extra'"),
    ("wrong schema version", _mutated(lambda s: s.update(schema_version=2)), "schema_version: must be 1, got 2"),
    ("predictions not a list", _mutated(lambda s: s.update(predictions={"a": 1})),
     "predictions: expected an array, got an object"),
    ("empty predictions", _mutated(lambda s: s.update(predictions=[])), "predictions: needs at least 1 item, got 0"),
    ("bad kind", _mutated(lambda s: s["model"].update(kind="magic")),
     "model.kind: must be one of \"formula\", \"learned\", \"mllm\", \"other\", got 'magic'"),
    ("no model name", _mutated(lambda s: s["model"].pop("name")), "model: missing field 'name'"),
    ("javascript url", _mutated(lambda s: s["model"].update(url="javascript:alert(1)")),
     "model.url: not an http(s) URL: 'javascript:alert(1)'"),
    ("negative parameters", _mutated(lambda s: s["model"].update(parameters=-5)),
     "model.parameters: must be >= 0, got -5"),
    ("unknown config", _mutated(lambda s: s["dataset"].update(config="images")),
     "dataset.config: must be one of \"scores\", \"descriptions\", got 'images'"),
    ("pair id with a newline", _mutated(lambda s: s["predictions"][0].update(pair_id="a\nb")),
     "predictions[0].pair_id: contains control characters"),
    ("empty text", _mutated(lambda s: s["predictions"][1].update(text=""), text_sub),
     "predictions[1].text: empty text"),
    ("blank text", _mutated(lambda s: s["predictions"][1].update(text=" \n\t "), text_sub),
     "predictions[1].text: blank text (only white space)"),
    ("over-long text", _mutated(lambda s: s["predictions"][3].update(text="a" * (MAX_TEXT_CHARS + 1)), text_sub),
     f"predictions[3].text: longer than {MAX_TEXT_CHARS:,} characters ({MAX_TEXT_CHARS + 1:,})"),
    ("score in a descriptions submission", _mutated(lambda s: s["predictions"][0].update(score=1.0), text_sub),
     "predictions[0]: unknown field 'score'"),
]


@pytest.mark.parametrize("doc,line", [(d, line) for _, d, line in REJECTIONS], ids=[r[0] for r in REJECTIONS])
def test_each_structural_rejection(doc, line):
    ref = DREF if doc["dataset"].get("config") == "descriptions" else REF
    assert line in problems(doc, ref)


@pytest.mark.parametrize("token,shown", [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"),
                                         ("1e999", "1e999")])
def test_non_finite_numbers_rejected_with_their_path(token, shown):
    text = json.dumps(scores_sub()).replace('"score": 3.25', f'"score": {token}')
    assert problems(text.encode()) == [f"predictions[7].score: not a finite number ({shown})"]


def test_non_finite_anywhere_rejected():
    text = json.dumps(scores_sub(settings={"k": 1.0})).replace('"k": 1.0', '"k": NaN')
    assert problems(text.encode()) == ["model.settings.k: not a finite number (NaN)"]


def test_huge_integer_rejected():
    text = json.dumps(scores_sub()).replace('"score": 3.25', '"score": ' + "9" * 5000)
    assert problems(text.encode()) == ["predictions[7].score: integer with more than 30 digits"]


def test_pair_id_problems_against_the_split():
    sub = scores_sub()
    sub["predictions"][3]["pair_id"] = PAIRS[1]  # a duplicate, so PAIRS[3] goes missing
    sub["predictions"][5]["pair_id"] = "I9999_01_01+I9999_02_01"  # unknown, so PAIRS[5] goes missing
    assert problems(sub) == [
        f"predictions[3].pair_id: duplicate pair id '{PAIRS[1]}' (also predictions[1])",
        "predictions[5].pair_id: unknown pair id 'I9999_01_01+I9999_02_01' (not in spcd/scores/test)",
        f"predictions: 2 of the 12 pairs of spcd/scores/test have no prediction (first: {PAIRS[3]}, {PAIRS[5]})",
    ]


@pytest.mark.parametrize("key,value,line", [
    ("name", "m-spcd", "dataset.name: 'm-spcd' does not match the dataset's 'spcd'"),
    ("split", "train", "dataset.split: 'train' does not match the dataset's 'test'"),
    ("fingerprint", "0" * 64, f"dataset.fingerprint: '{'0' * 57}...' does not match the dataset's '{'f' * 64}'"),
])
def test_dataset_mismatch(key, value, line):
    sub = scores_sub()
    sub["dataset"][key] = value
    assert line in problems(sub)


def test_not_json_not_utf8_repeated_keys():
    assert problems(b'{"schema_version": 1,') == ["(top level): not valid JSON (line 1, column 22: "
                                                  "Expecting property name enclosed in double quotes)"]
    assert problems(b"\xef\xbb\xbf" + json.dumps(scores_sub()).encode()) == []  # a BOM is tolerated
    assert problems(json.dumps(scores_sub()).encode("utf-16")) == [
        "(top level): not UTF-8 text (invalid byte 0xff at offset 0)"]
    assert problems(b"\x80") == ["(top level): not UTF-8 text (invalid byte 0x80 at offset 0)"]
    text = json.dumps(scores_sub()).replace('"kind": "formula"', '"kind": "formula", "kind": "other"')
    assert problems(text.encode()) == ["model.kind: repeated key"]


def test_deep_nesting_and_huge_structures():
    deep = json.dumps(scores_sub(settings={}))
    nested = "[" * 10_000 + "]" * 10_000
    assert problems(deep.replace('"settings": {}', f'"settings": {nested}').encode()) == [
        f"(top level): nested deeper than {MAX_DEPTH} levels"]  # refused by the parser, no RecursionError leak
    nested = "[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2)
    lines = problems(deep.replace('"settings": {}', f'"settings": {nested}').encode())
    assert lines == [f"model.settings{'[0]' * (MAX_DEPTH - 2)}: nested deeper than {MAX_DEPTH} levels"]
    doc, lines = parse_submission(b"[" + b"[]," * 1_100_000 + b"[]]")
    assert doc is None and lines[0].startswith("(top level): too large a structure (1,100,002 objects/arrays")


def test_file_size_limit_checked_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.json"
    with open(path, "wb") as f:  # a sparse 60 MB file: the size alone must refuse it
        f.truncate(60 * 2**20)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read before the size check"))
    assert main(["leaderboard", "validate", str(path)]) == 2
    from cdbench.errors import DataError

    with pytest.raises(DataError, match=r"62,914,560 bytes is over the size limit of 52,428,800 bytes \(50 MB\)"):
        validate_submission(path)
    with pytest.raises(DataError, match="not a regular file"):
        validate_submission(tmp_path)


def test_cli_validate(tmp_path, capsys):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(scores_sub()))
    sub = scores_sub()
    sub["predictions"][17 % 12]["score"] = "x"
    sub["model"]["kind"] = 3
    bad.write_bytes(json.dumps(sub).replace('"score": 1.5', '"score": NaN').encode())
    assert main(["leaderboard", "validate", str(good)]) == 0
    assert "valid: 'ciede2000', 12 predictions" in capsys.readouterr().out
    assert main(["leaderboard", "validate", str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["predictions[0].score: not a finite number (NaN)",
                   "model.kind: must be one of \"formula\", \"learned\", \"mllm\", \"other\", got '3'",
                   "predictions[5].score: expected a number, got a string ('x')"]


# --- hypothesis: malformed submissions never crash, each rejected with one-line reasons -----------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated_submissions(draw):
    sub = copy.deepcopy(draw(st.sampled_from([scores_sub(), text_sub()])))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(sub) if p]
        path = draw(st.sampled_from(paths))
        parent = sub
        for k in path[:-1]:
            parent = parent[k]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=6))] = draw(json_values)
        else:
            parent[path[-1]] = draw(json_values)
    return sub


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_submissions())
def test_hypothesis_mutations_never_crash(sub):
    ref = DREF if isinstance(sub.get("dataset"), dict) and sub["dataset"].get("config") == "descriptions" else REF
    result = validate_submission(json.dumps(sub).encode(), ref)
    for line in result.lines():
        assert "\n" not in line and ": " in line
    if result.ok:  # accepted only when the published schema accepts it and the pairs are exactly the split's
        jsonschema.validate(sub, submission_schema())
        ids = [p["pair_id"] for p in sub["predictions"]]
        assert sorted(ids) == sorted(ref.pair_ids)
        key = "score" if sub["dataset"]["config"] == "scores" else "text"
        assert all(key in p and (key == "text" or math.isfinite(p[key])) for p in sub["predictions"])
    else:
        assert result.submission is None


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_hypothesis_arbitrary_bytes_never_crash(data):
    result = validate_submission(data, REF)
    assert not result.ok
    assert all("\n" not in line for line in result.lines())
