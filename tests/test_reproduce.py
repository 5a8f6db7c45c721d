"""``cdbench reproduce``: baseline specs, the paper's layout in Markdown / LaTeX / CSV, baselines
that cannot run listed with their reason, and real runs on synthetic data and the 13 real I0249 pairs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from cdbench.cli import main
from cdbench.errors import DataError
from cdbench.reproduce import TABLES, load_spec, load_specs, plan_baseline, reproduce_table
from cdbench.reproduce.tables import TableRow, to_csv, to_latex, to_markdown

REPO = Path(__file__).resolve().parents[1]
BASELINES = REPO / "baselines"


def test_every_shipped_spec_loads_and_every_table_has_baselines():
    specs = load_specs(BASELINES)
    assert {s.id for s in specs} >= {"ciede2000", "cie76", "cie94", "cmc", "cam16ucs", "itp", "s-cielab",
                                     "s-ciede2000", "cdnet", "q-align", "cd-reasoning"}
    for table in TABLES:
        assert load_specs(BASELINES, table), table
    from cdbench.models.registry import list_models

    for s in specs:  # every registry name a spec uses exists
        assert s.model is None or s.model in list_models(), s.id
        assert s.reference and s.path is not None
    measures = [s.id for s in load_specs(BASELINES, "spcd-measures")]
    assert measures[-1] == "cdnet" and "q-align" not in measures  # formulas first, then learned models
    assert [s.id for s in load_specs(BASELINES, "mspcd-description")] == ["cd-reasoning", "mplug-owl2"]


def test_plan_lists_the_reason_a_baseline_cannot_run(tmp_path):
    cdnet = load_spec(BASELINES / "cdnet.yaml")
    reason, _, _ = plan_baseline(cdnet, {}, cuda=False)
    assert reason.startswith("no weights") and "--weights cdnet=PATH" in reason
    reason, arg, options = plan_baseline(cdnet, {"cdnet": str(tmp_path)}, cuda=False)
    assert reason is None and arg == "cdnet" and options["weights"] == str(tmp_path)
    assert "no such file" in plan_baseline(cdnet, {"cdnet": str(tmp_path / "x")}, cuda=False)[0]
    cdr = load_spec(BASELINES / "cd-reasoning.yaml")
    assert plan_baseline(cdr, {}, cuda=True)[0].startswith("no checkpoint folder")
    assert plan_baseline(cdr, {"cd-reasoning": str(tmp_path)}, cuda=False)[0].startswith("needs a GPU")
    reason, arg, options = plan_baseline(cdr, {"cd-reasoning": str(tmp_path)}, cuda=True)
    assert reason is None and arg == str(tmp_path) and options == {"device": "cuda"}


@pytest.mark.parametrize("text,message", [
    ("name: x\nkind: formula\nreference: r\ntables: [spcd-measures]\n", "needs 'weights: folder'"),
    ("name: x\nmodel: cie76\nkind: magic\nreference: r\ntables: [spcd-measures]\n", "kind must be one of"),
    ("name: x\nmodel: cie76\nkind: formula\nreference: r\ntables: [table-9]\n", "tables must be a list of"),
    ("name: x\nmodel: cie76\nkind: formula\ntables: [spcd-measures]\n", "missing field 'reference'"),
    ("name: x\nmodel: cie76\nkind: formula\nreference: r\ntables: [spcd-measures]\nextra: 1\n", "unknown field"),
    ("name: [unclosed\n", "not a readable YAML baseline spec"),
    ("!!python/object/apply:os.system ['echo hi']\n", "not a readable YAML baseline spec"),  # safe_load only
])
def test_bad_specs(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        load_spec(path)


def test_layouts_markdown_latex_csv():
    m = {s: {"srcc": 0.9 - i / 10, "plcc": 0.91, "stress": 25.0 + i} for i, s in
         enumerate(("all", "aligned", "not_aligned"))}
    rows = [TableRow("a", "A_1 & co", m, "ran"), TableRow("b", "B", None, "skipped", "no weights"),
            TableRow("a", "A_1 & co (published)", {"all": {"srcc": 0.88}}, "published")]
    md = to_markdown(rows, "scores", "T").splitlines()
    assert md[2] == ("| Method | SRCC (all) | PLCC (all) | STRESS (all) | SRCC (aligned) | PLCC (aligned) | "
                     "STRESS (aligned) | SRCC (not aligned) | PLCC (not aligned) | STRESS (not aligned) |")
    assert md[4] == "| A_1 & co | 0.9000 | 0.9100 | 25.00 | 0.8000 | 0.9100 | 26.00 | 0.7000 | 0.9100 | 27.00 |"
    assert md[5] == "| B \u2020 | " + " | ".join(["\u2014"] * 9) + " |"
    assert md[6].startswith("| A_1 & co (published) | 0.8800 | \u2014 |")
    assert md[-1] == "\u2020 B: not run: no weights"
    tex = to_latex(rows, "scores", "T", "tab:t")
    assert "\\multicolumn{3}{c}{All} & \\multicolumn{3}{c}{Aligned} & \\multicolumn{3}{c}{Not aligned}" in tex
    assert "A\\_1 \\& co & \\textbf{0.9000} & \\textbf{0.9100} & \\textbf{25.00}" in tex
    assert "B$^\\dagger$ & -- & --" in tex and tex.count("\\begin{tabular}{l" + "c" * 9 + "}") == 1
    got = list(csv.DictReader(io.StringIO(to_csv(rows, "scores"))))
    assert got[0]["all_srcc"] == "0.9" and got[0]["not_aligned_stress"] == "27.0"
    assert got[1]["status"] == "skipped" and got[1]["reason"] == "no weights" and got[1]["all_srcc"] == ""
    d = {"all": {"n": 4, "captions": {"bleu1": 0.5, "cider": 1.2}, "attributes": {"macro_f1": 0.6}}}
    md = to_markdown([TableRow("c", "C", d, "ran")], "descriptions").splitlines()
    assert md[0].startswith("| Method | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | METEOR | ROUGE-L | CIDEr | BERTScore |")
    assert md[2].startswith("| C | 0.5000 | \u2014 | \u2014 | \u2014 | \u2014 | \u2014 | 1.2000 |")


def test_description_table_without_checkpoints_lists_every_reason(tmp_path, capsys):
    assert main(["reproduce", "--table", "mspcd-description", "--dataset", str(tmp_path / "none"), "--out",
                 str(tmp_path / "out"), "--baselines", str(BASELINES)]) == 0
    out = capsys.readouterr().out
    assert "\u2020 CD-Reasoning: not run: no checkpoint folder" in out
    assert "\u2020 mPLUG-Owl2 (zero-shot): not run: no checkpoint folder" in out
    rows = json.loads((tmp_path / "out" / "mspcd-description.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert main(["reproduce", "--table", "spcd-measures", "--dataset", "x", "--only", "nope",
                 "--baselines", str(BASELINES)]) == 2


def _build(root: Path, *args: str) -> Path:
    assert main(["build", "spcd", *args, "--out", str(root)]) == 0
    return root


def _check_against_scipy(result, dataset: Path, split: str, run_dir: Path, model: str) -> None:
    """The table's SRCC of ``model`` equals scipy's on its saved predictions and the split's labels."""
    from cdbench.data.dataset import open_split

    ds = open_split(dataset, "scores", split)
    human = dict(zip(ds["pair_id"], ds["score"]))
    aligned = dict(zip(ds["pair_id"], ds["aligned"]))
    preds = [json.loads(line) for line in (run_dir / model / f"scores-{split}" / "predictions.jsonl")
             .read_text().splitlines()]
    x = np.array([p["score"] for p in preds])
    y = np.array([human[p["pair_id"]] for p in preds])
    a = np.array([aligned[p["pair_id"]] for p in preds])
    row = next(r for r in result.rows if r.id == model)
    assert row.metrics["all"]["srcc"] == pytest.approx(spearmanr(x, y)[0], abs=1e-12)
    assert row.metrics["aligned"]["srcc"] == pytest.approx(spearmanr(x[a], y[a])[0], abs=1e-12)
    assert row.metrics["not_aligned"]["n"] == int((~a).sum())


def test_reproduce_on_synthetic_data(tmp_path):
    from cdbench.data.synthetic import make_synthetic_spcd

    make_synthetic_spcd(tmp_path / "raw", n_scenes=2, size=16, seed=5, hide_test_scores=False)
    ds = _build(tmp_path / "ds", "--root", str(tmp_path / "raw"))
    out = tmp_path / "rep"
    result = reproduce_table("spcd-measures", ds, out, baselines_dir=BASELINES, only=["cie76", "ciede2000", "cdnet"],
                             n_boot=0, progress=False)
    assert [(r.id, r.status) for r in result.rows] == [("cie76", "ran"), ("ciede2000", "ran"), ("cdnet", "skipped")]
    _check_against_scipy(result, ds, "test", out / "runs", "ciede2000")
    for suffix in ("md", "tex", "csv", "json"):
        assert (out / f"spcd-measures.{suffix}").is_file()
    # each run leaves a submission the leaderboard accepts as is (schema, dataset, every pair id)
    from cdbench.leaderboard.scoring import load_split_labels
    from cdbench.leaderboard.validate import validate_submission

    ref = load_split_labels(ds, "scores", "test").reference
    result_sub = validate_submission(out / "runs" / "ciede2000" / "scores-test" / "submission.json", ref)
    assert result_sub.ok, result_sub.lines()
    record = json.loads((out / "spcd-measures.json").read_text())
    assert record["versions"]["cdbench"] and record["split"] == "test"
    # a rerun resumes from the saved predictions (nothing recomputed) and gives the same table
    again = reproduce_table("spcd-measures", ds, out, baselines_dir=BASELINES, only=["cie76", "ciede2000", "cdnet"],
                            n_boot=0, progress=False)
    assert again.markdown == result.markdown


def test_reproduce_on_the_real_i0249_pairs(shared_data, tmp_path, capsys):
    """The 13 scored real SPCD pairs: CIEDE2000's SRCC equals scipy's on skimage's per-pair means."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    from cdbench.data.images import load_image

    ds = _build(tmp_path / "real", "--root", str(shared_data / "spcd"), "--allow-missing")
    out = tmp_path / "rep"
    assert main(["reproduce", "--table", "spcd-measures", "--dataset", str(ds), "--split", "train", "--out",
                 str(out), "--only", "ciede2000,cdnet", "--n-boot", "0", "--no-progress",
                 "--baselines", str(BASELINES)]) == 0
    printed = capsys.readouterr().out
    assert "| CIEDE2000 |" in printed and "\u2020 CD-Net: not run: no weights" in printed
    rows = list(csv.DictReader((out / "spcd-measures.csv").open()))
    assert [r["id"] for r in rows] == ["ciede2000", "cdnet"]
    from cdbench.data.dataset import image_path, open_split

    split = open_split(ds, "scores", "train")
    assert len(split) == 13 and all("I0249" in p for p in split["pair_id"])
    ours, ref = [], []
    preds = {json.loads(line)["pair_id"]: json.loads(line)["score"] for line in
             (out / "runs" / "ciede2000" / "scores-train" / "predictions.jsonl").read_text().splitlines()}
    for pid, f1, f2 in zip(split["pair_id"], split["image1_file"], split["image2_file"]):
        lab1 = rgb2lab(load_image(image_path(ds, f1)))
        lab2 = rgb2lab(load_image(image_path(ds, f2)))
        ref.append(float(deltaE_ciede2000(lab1, lab2).mean()))
        ours.append(preds[pid])
    np.testing.assert_allclose(ours, ref, rtol=2e-4)  # per-pair mean CIEDE2000 agrees with skimage (float64)
    srcc_ref = spearmanr(ref, split["score"])[0]
    assert float(rows[0]["all_srcc"]) == pytest.approx(srcc_ref, abs=1e-12)


def test_published_numbers_shown_next_to_a_baseline(tmp_path):
    (tmp_path / "paper-net.yaml").write_text(
        "name: PaperNet\nmodel: cdnet\nkind: learned\nweights: option\nreference: a paper, Table 3\n"
        "tables: [spcd-measures]\npublished:\n  spcd-measures:\n    all: {srcc: 0.8765, plcc: 0.9, stress: 21.5}\n")
    result = reproduce_table("spcd-measures", tmp_path / "ds", tmp_path / "out", baselines_dir=tmp_path,
                             progress=False)
    assert [(r.name, r.status) for r in result.rows] == [("PaperNet", "skipped"), ("PaperNet (published)",
                                                                                   "published")]
    assert "| PaperNet (published) | 0.8765 | 0.9000 | 21.50 | \u2014 |" in result.markdown
