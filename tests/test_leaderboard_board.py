"""The board (atomic add/replace, ranking, rebuild from scratch), the rendered page and Markdown,
competition CSV interop, and ``cdbench leaderboard submit`` end to end on a synthetic dataset."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdbench.cli import main
from cdbench.errors import DataError
from cdbench.leaderboard import board as board_mod
from cdbench.leaderboard.board import add_entry, build_board, find_metric, load_board, make_entry, rank_entries
from cdbench.leaderboard.competition import export_competition_csv, import_competition_csv, read_pair_list
from cdbench.leaderboard.render import render_html, render_markdown

PAIRS = [f"I{s:04d}_01_01+I{s:04d}_0{j}_01" for s in range(1, 5) for j in (2, 3, 4)]


def _sub(name: str, config: str = "scores", **model) -> dict:
    key, value = ("score", 1.0) if config == "scores" else ("text", "slight white balance difference")
    return {"schema_version": 1, "model": {"name": name, "kind": "other", **model},
            "dataset": {"name": "spcd", "config": config, "split": "test"},
            "predictions": [{"pair_id": p, key: value} for p in PAIRS]}


def _metrics(srcc: float, plcc: float, stress: float, n: int = 300) -> dict:
    """Hand-made metrics in the evaluator's layout."""
    return {s: {"n": n, "srcc": srcc, "plcc": plcc, "krcc": srcc - 0.1, "rmse": 1.0, "stress": stress,
                "ci95": {"srcc": [srcc - 0.02, srcc + 0.02]}} for s in ("all", "aligned", "not_aligned")}


def _entry(name: str, srcc: float, plcc: float = 0.8, stress: float = 30.0) -> dict:
    return make_entry(_sub(name), _metrics(srcc, plcc, stress))


# --- ranking --------------------------------------------------------------------------------------

def test_ranking_by_srcc_ties_by_plcc_and_significance():
    entries = [_entry("b", 0.80, 0.85, 31.0), _entry("a", 0.90, 0.70, 29.5), _entry("c", 0.80, 0.90, 40.0),
               _entry("d", 0.95, 0.95, 20.0)]
    ranked = rank_entries(entries)
    assert [(e["model"]["name"], e["rank"]) for e in ranked] == [("d", 1), ("a", 2), ("c", 3), ("b", 4)]
    sig = {e["model"]["name"]: e["significance"] for e in ranked}
    assert sig["d"]["stress"] == "leader"
    # F = (29.5/20)^2 = 2.18 with (299, 299) df: far beyond the 5% critical value (about 1.25)
    assert sig["a"]["stress"] == "worse" and sig["a"]["stress_p"] < 1e-9
    assert sig["a"]["srcc_ci"] == "separate"  # [0.88, 0.92] vs [0.93, 0.97]
    few = rank_entries([_entry("x", 0.9, stress=20.0), make_entry(_sub("y"), _metrics(0.89, 0.8, 20.5, n=300))])
    assert few[1]["significance"]["stress"] == "same" and few[1]["significance"]["srcc_ci"] == "overlap"


def test_missing_metrics_rank_last_and_tables_are_separate():
    e1, e2 = _entry("m1", 0.5), make_entry(_sub("m2"), {"all": {"srcc": None, "plcc": None}})
    e3 = make_entry(_sub("m3", "descriptions"), {"all": {"n": 12, "captions": {"meteor": 0.3},
                                                         "attributes": {"macro_f1": 0.4}}})
    ranked = rank_entries([e2, e3, e1])
    assert [(e["task"], e["model"]["name"], e["rank"]) for e in ranked] == [
        ("descriptions", "m3", 1), ("scores", "m1", 1), ("scores", "m2", 2)]
    assert find_metric(e3["metrics"], "macro_f1") == 0.4 and find_metric(e3["metrics"], "meteor") == 0.3


@settings(max_examples=30, deadline=None)
@given(st.permutations(range(6)), st.lists(st.sampled_from([0.6, 0.7, 0.8]), min_size=6, max_size=6))
def test_rank_is_independent_of_insertion_order(order, srccs):
    entries = [_entry(f"m{i}", srccs[i], plcc=0.5 + 0.05 * i) for i in range(6)]
    assert rank_entries([entries[i] for i in order]) == rank_entries(entries)


# --- add / replace, atomically ---------------------------------------------------------------------

def test_board_after_n_submits_equals_board_built_from_scratch(tmp_path):
    specs = [("m0", 0.7), ("m1", 0.9), ("m2", 0.8), ("m3", 0.9), ("m1", 0.6)]  # m1 resubmitted: replaced
    for i, (name, srcc) in enumerate(specs):
        add_entry(tmp_path, _entry(name, srcc, plcc=0.5 + i / 10), _sub(name, description=str(i)),
                  replace=name == "m1" and i == 4)
    incremental = load_board(tmp_path)
    final = {"m0": (0.7, 0.5), "m2": (0.8, 0.7), "m3": (0.9, 0.8), "m1": (0.6, 0.9)}
    scratch = build_board([_entry(n, s, plcc=p) for n, (s, p) in final.items()])
    strip = [{k: v for k, v in e.items() if k != "submission"} for e in incremental["entries"]]
    assert strip == json.loads(json.dumps(scratch["entries"]))
    assert [e["model"]["name"] for e in incremental["entries"]] == ["m3", "m2", "m0", "m1"]
    # one stored submission per entry; the replaced one is gone
    files = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "submissions").rglob("*.json"))
    assert files == sorted(e["submission"]["file"] for e in incremental["entries"])
    m1 = json.loads((tmp_path / next(e for e in incremental["entries"] if e["model"]["name"] == "m1")
                     ["submission"]["file"]).read_text())
    assert m1["model"]["description"] == "4"


def test_resubmission_needs_replace(tmp_path):
    add_entry(tmp_path, _entry("m", 0.5), _sub("m"))
    before = (tmp_path / "board.json").read_bytes()
    with pytest.raises(DataError, match=r"model 'm' is already on the board \(scores, spcd/test\); use --replace"):
        add_entry(tmp_path, _entry("m", 0.9), _sub("m"))
    assert (tmp_path / "board.json").read_bytes() == before


def test_crash_mid_way_leaves_the_board_as_it_was(tmp_path, monkeypatch):
    add_entry(tmp_path, _entry("m0", 0.5), _sub("m0"))
    before = (tmp_path / "board.json").read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed after the submission copy, before board.json is replaced

    monkeypatch.setattr(board_mod, "atomic_write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        add_entry(tmp_path, _entry("m1", 0.9), _sub("m1"))
    with pytest.raises(KeyboardInterrupt):
        add_entry(tmp_path, _entry("m0", 0.9), _sub("m0", description="new"), replace=True)
    assert (tmp_path / "board.json").read_bytes() == before
    assert load_board(tmp_path)["entries"][0]["model"]["name"] == "m0"
    old_file = tmp_path / load_board(tmp_path)["entries"][0]["submission"]["file"]
    assert old_file.is_file()  # the entry's own submission copy survived the failed replace
    monkeypatch.undo()
    assert [e["model"]["name"] for e in add_entry(tmp_path, _entry("m1", 0.9), _sub("m1"))["entries"]] == ["m1", "m0"]


def test_not_a_board(tmp_path):
    (tmp_path / "board.json").write_text('{"entries": 3}')
    with pytest.raises(DataError, match="not a cdbench board"):
        load_board(tmp_path)


# --- the page and the Markdown table ---------------------------------------------------------------

def test_html_escapes_submission_strings_and_loads_nothing_external():
    evil = '<script>alert(1)</script>"onmouseover="x'
    board = build_board([make_entry(_sub(evil, url="https://example.org/a?b=1&c=<2>", description="<img src=x>"),
                                    _metrics(0.9, 0.9, 20)), _entry("plain", 0.5)])
    page = render_html(board)
    assert "<script>alert(1)" not in page and "<img src=x>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;onmouseover=&quot;x" in page
    assert 'href="https://example.org/a?b=1&amp;c=&lt;2&gt;"' in page
    # no resource is fetched from anywhere: no src/srcset/background attributes, no <link>, <img>, <iframe>,
    # no @import or url(...) in styles; the only links are the model's own http(s) page
    tags = _tags(page)
    assert not any(a in ("src", "srcset", "background", "data", "poster") for _, attrs in tags for a, _ in attrs)
    assert not {t for t, _ in tags} & {"link", "img", "iframe", "object", "embed", "video", "audio", "base"}
    assert not re.search(r"@import|url\(", page, re.I)
    assert [v for t, attrs in tags for a, v in attrs if a == "href"] == ["https://example.org/a?b=1&c=<2>"]
    assert page.count("<tbody>") == 1 and page.count("<tr><td") == 2
    assert "Metric definitions" in page and "STRESS" in page and "Garcia" in page


def _tags(page: str) -> list[tuple[str, list]]:
    from html.parser import HTMLParser

    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collect().feed(page)
    return found


def test_description_table_on_the_page():
    d = make_entry(_sub("describer", "descriptions"), {"all": {"n": 12, "captions": {"bleu1": 0.41, "meteor": 0.2},
                                                             "attributes": {"macro_f1": 0.55, "accuracy": 0.6}}})
    page = render_html(build_board([d, _entry("scorer", 0.8)]))
    assert 'data-task="descriptions"' in page and 'data-task="scores"' in page
    assert "Attr. macro-F1" in page and 'data-value="0.55"' in page and "BLEU-1" in page
    assert "CIDEr" not in page.split('data-task="descriptions"')[1].split("</table>")[0]  # absent metrics: no column
    md = render_markdown(build_board([d]))
    assert "| 1 | describer | 0.5500 | 0.6000 | 0.4100 | 0.2000 |" in md


def test_markdown_table():
    board = build_board([_entry("a|b", 0.9, 0.91, 20.0), _entry("<c>", 0.5, 0.6, 45.0)])
    md = render_markdown(board).splitlines()
    assert md[0] == "### Scores: spcd / test"
    assert md[2].startswith("| # | Model | SRCC (all) | PLCC (all) | STRESS (all) | SRCC (aligned)")
    assert md[4] == ("| 1 | a\\|b | 0.9000 | 0.9100 | 20.00 | 0.9000 | 0.9100 | 20.00 | 0.9000 | 0.9100 | 20.00 "
                     "| \u2014 |")
    assert md[5].startswith("| 2 | &lt;c&gt; | 0.5000 | 0.6000 | 45.00 |") and md[5].endswith("| \u25bc |")


# --- competition CSV interop -----------------------------------------------------------------------

def _pair_list(path: Path, pairs=PAIRS) -> Path:
    rows = ["image1,image2,score"] + [f"{p.split('+')[0]}.png,{p.split('+')[1]}.png," for p in pairs]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_competition_csv_round_trip(tmp_path):
    pairs_csv = _pair_list(tmp_path / "test_data.csv")
    sub = _sub("m")
    for i, p in enumerate(sub["predictions"]):
        p["score"] = 1.0 / (i + 3)
    sub["predictions"].append({"pair_id": "I0999_01_01+I0999_02_01", "score": 2.0})  # not in the list: left out
    assert export_competition_csv(sub, pairs_csv, tmp_path / "out.csv") == len(PAIRS)
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "id,score" and lines[1] == f"1,{1 / 3!r}" and lines[-1] == f"{len(PAIRS)},{1 / 14!r}"
    back = import_competition_csv(tmp_path / "out.csv", pairs_csv, {"name": "m", "kind": "other"})
    assert back["predictions"] == sub["predictions"][:-1]
    assert back["dataset"] == {"name": "spcd", "config": "scores", "split": "test"}


@pytest.mark.parametrize("body,message", [
    ("id,value\n1,2\n", "line 1: expected the header 'id,score'"),
    ("id,score\n1,2\n1,3\n", "line 3: id 1 appears twice"),
    ("id,score\n0,2\n", r"line 2: id '0' is not a row of test_data.csv \(1..12\)"),
    ("id,score\n1,nan\n", "line 2: score 'nan' is not a finite number"),
    ("id,score\n1,abc\n", "line 2: score 'abc' is not a number"),
    ("id,score\n1,2,3\n", "line 2: expected 2 columns"),
    ("id,score\n1,2\n", r"11 of the 12 ids have no score \(first: 2, 3, 4, 5, 6\)"),
])
def test_competition_csv_errors(tmp_path, body, message):
    pairs_csv = _pair_list(tmp_path / "test_data.csv")
    (tmp_path / "in.csv").write_text(body)
    with pytest.raises(DataError, match=message):
        import_competition_csv(tmp_path / "in.csv", pairs_csv, {"name": "m"})


def test_competition_ids_are_rows_of_the_real_test_data(shared_data, tmp_path):
    pairs = read_pair_list(shared_data / "spcd" / "test_data.csv")
    assert len(pairs) == 20_000  # the competition's sample submission has ids 1..20000
    assert pairs[0] == "I0276_02_02+I0276_04_01" and pairs[2] == "I0249_02_01+I0249_06_01"
    sub = {"schema_version": 1, "model": {"name": "m"}, "dataset": {"name": "spcd", "config": "scores",
                                                                     "split": "test"},
           "predictions": [{"pair_id": p, "score": float(i % 7)} for i, p in enumerate(reversed(pairs))]}
    out = tmp_path / "submission.csv"
    assert main(["leaderboard", "export-csv", _write(tmp_path / "s.json", sub), "--pairs",
                 str(shared_data / "spcd" / "test_data.csv"), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 20_001 and lines[1] == f"1,{float((20_000 - 1) % 7)!r}"
    assert main(["leaderboard", "import-csv", str(out), "--pairs", str(shared_data / "spcd" / "test_data.csv"),
                 "--model-name", "m", "--out", str(tmp_path / "back.json")]) == 0
    back = json.loads((tmp_path / "back.json").read_text())
    assert {p["pair_id"]: p["score"] for p in back["predictions"]} == \
        {p["pair_id"]: p["score"] for p in sub["predictions"]}


def _write(path: Path, obj) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


# --- end to end: cdbench leaderboard submit / render / rebuild on a built synthetic dataset -----------

@pytest.fixture(scope="module")
def synthetic_dataset(tmp_path_factory):
    from cdbench.data.synthetic import make_synthetic_spcd

    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_spcd(root / "raw", n_scenes=4, size=24, seed=3, hide_test_scores=False)
    assert main(["build", "spcd", "--root", str(root / "raw"), "--out", str(root / "ds"), "--labels-only"]) == 0
    return root / "ds"


def _submission_for(ds: Path, name: str, noise: float, seed: int) -> dict:
    from cdbench.data.dataset import dataset_info, open_split

    split = open_split(ds, "scores", "test")
    rng = np.random.default_rng(seed)
    return {"schema_version": 1, "model": {"name": name, "kind": "other"},
            "dataset": {"name": dataset_info(ds)["name"], "config": "scores", "split": "test",
                        "fingerprint": dataset_info(ds)["label_fingerprint"]},
            "predictions": [{"pair_id": p, "score": float(s) + float(rng.normal(0, noise))}
                            for p, s in zip(split["pair_id"], split["score"])],
            "metrics": {"all": {"srcc": 1.0}}}  # submitted metrics are ignored


def test_submit_render_rebuild_end_to_end(synthetic_dataset, tmp_path, capsys):
    from cdbench.evaluation import score_predictions
    from cdbench.leaderboard.scoring import rebuild_board

    ds, board_dir = synthetic_dataset, tmp_path / "board"
    subs = [_submission_for(ds, f"noise-{k}", noise, k) for k, noise in enumerate((3.0, 0.2, 1.0))]
    for k, sub in enumerate(subs):
        assert main(["leaderboard", "submit", _write(tmp_path / f"s{k}.json", sub), "--dataset", str(ds),
                     "--board", str(board_dir), "--n-boot", "3"]) == 0
    board = load_board(board_dir)
    assert [e["model"]["name"] for e in board["entries"]] == ["noise-1", "noise-2", "noise-0"]
    direct = score_predictions(subs[1], ds, "scores", "test", n_boot=3, seed=0)["subsets"]
    top = board["entries"][0]
    assert top["metrics"]["all"]["srcc"] == pytest.approx(direct["all"]["srcc"], abs=0)  # recomputed, not 1.0
    assert top["metrics"]["all"]["srcc"] < 1.0
    assert top["metrics"]["not_aligned"]["stress"] == pytest.approx(direct["not_aligned"]["stress"], abs=0)
    assert len(top["scatter"]["prediction"]) == len(subs[1]["predictions"])
    # a resubmission without --replace is refused, with it the entry is replaced
    assert main(["leaderboard", "submit", str(tmp_path / "s0.json"), "--dataset", str(ds), "--board",
                 str(board_dir), "--n-boot", "3"]) == 2
    assert "use --replace" in capsys.readouterr().err
    better = _submission_for(ds, "noise-0", 0.05, 9)
    assert main(["leaderboard", "submit", _write(tmp_path / "s0b.json", better), "--dataset", str(ds),
                 "--board", str(board_dir), "--n-boot", "3", "--replace"]) == 0
    board = load_board(board_dir)
    assert [e["model"]["name"] for e in board["entries"]] == ["noise-0", "noise-1", "noise-2"]
    # the board after these submits equals the board rebuilt from scratch from the stored submissions
    assert rebuild_board(board_dir, ds) == board
    # a bad submission is refused with one line per problem and the board is unchanged
    bad = _submission_for(ds, "bad", 1.0, 1)
    bad["predictions"][0]["score"] = "1.0"
    bad["predictions"][1]["pair_id"] = bad["predictions"][2]["pair_id"]
    before = (board_dir / "board.json").read_bytes()
    capsys.readouterr()
    assert main(["leaderboard", "submit", _write(tmp_path / "bad.json", bad), "--dataset", str(ds),
                 "--board", str(board_dir)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "predictions[0].score: expected a number, got a string ('1.0')"
    assert err[1].startswith("predictions[2].pair_id: duplicate pair id")
    assert err[2].startswith("predictions: 1 of the ")
    assert (board_dir / "board.json").read_bytes() == before
    assert main(["leaderboard", "render", "--board", str(board_dir), "--out", str(tmp_path / "site")]) == 0
    page = (tmp_path / "site" / "index.html").read_text()
    assert page.count("<tr><td") == 3 and (tmp_path / "site" / "leaderboard.md").is_file()


@pytest.mark.slow
def test_submit_descriptions_end_to_end(tmp_path):
    """A descriptions submission is scored with the caption and attribute metrics and ranked."""
    from cdbench.data.dataset import dataset_info, open_split
    from cdbench.data.synthetic import make_synthetic_mspcd, make_synthetic_spcd

    make_synthetic_spcd(tmp_path / "raw", n_scenes=2, size=16, seed=1)
    make_synthetic_mspcd(tmp_path / "ann", tmp_path / "raw", seed=1, n_describe=2)
    ds = tmp_path / "mds"
    assert main(["build", "m-spcd", "--spcd", str(tmp_path / "raw"), "--annotations", str(tmp_path / "ann"),
                 "--out", str(ds), "--labels-only"]) == 0
    split = open_split(ds, "descriptions", "test")
    name = dataset_info(ds)["name"]
    subs = {"copies-the-reference": list(split["reference"]),
            "says-little": ["The images differ slightly."] * len(split)}
    for model, texts in subs.items():
        sub = {"schema_version": 1, "model": {"name": model, "kind": "other"},
               "dataset": {"name": name, "config": "descriptions", "split": "test"},
               "predictions": [{"pair_id": p, "text": t} for p, t in zip(split["pair_id"], texts)]}
        assert main(["leaderboard", "submit", _write(tmp_path / f"{model}.json", sub), "--dataset", str(ds),
                     "--board", str(tmp_path / "board")]) == 0
    board = load_board(tmp_path / "board")
    top, low = board["entries"]
    assert (top["model"]["name"], top["rank"], low["rank"]) == ("copies-the-reference", 1, 2)
    assert find_metric(top["metrics"], "macro_f1") == 1.0 and find_metric(top["metrics"], "meteor") == 1.0
    assert find_metric(low["metrics"], "macro_f1") < 1.0
    assert "significance" not in top and "scatter" not in top


def test_concurrent_submits_keep_every_entry(tmp_path):
    """Six processes add entries at once: the lock serialises read-modify-write, none is lost."""
    import subprocess
    import sys

    code = ("import sys; from cdbench.leaderboard.board import add_entry, make_entry; name = sys.argv[1]; "
            "sub = {'schema_version': 1, 'model': {'name': name}, 'dataset': {'name': 'm-spcd', "
            "'config': 'descriptions', 'split': 'test'}, 'predictions': [{'pair_id': 'a+b', 'text': 'x'}]}; "
            f"add_entry({str(tmp_path)!r}, make_entry(sub, {{'all': {{'macro_f1': 0.5}}}}), sub)")
    procs = [subprocess.Popen([sys.executable, "-c", code, f"m{i}"]) for i in range(6)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 6
    assert sorted(e["model"]["name"] for e in load_board(tmp_path)["entries"]) == [f"m{i}" for i in range(6)]
