"""The evaluation runner and `cdbench evaluate` / `cdbench score`: outputs, resume, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau, pearsonr, spearmanr

from cdbench.cli import main
from cdbench.data import level_value_to_score, score_to_level_value
from cdbench.data.images import load_image
from cdbench.errors import DataError
from cdbench.evaluation import evaluate_model, score_predictions
from cdbench.io import read_jsonl
from cdbench.metrics import stress
from cdbench.models.base import CDModel


class MeanAbsDiff(CDModel):
    """A tiny test model: mean absolute RGB difference of the two images (records what it scored)."""

    name = "mean-abs-diff"
    kind = "other"

    def __init__(self, scale="difference", offset=0.0):
        self.scale = scale
        self.offset = offset
        self.seen: list[str] = []

    def score(self, pairs, *, progress=False):
        out = []
        for a, b in pairs:
            self.seen.append(f"{Path(a).stem}+{Path(b).stem}")
            d = float(np.abs(load_image(a).astype(float) - load_image(b).astype(float)).mean())
            out.append(score_to_level_value(d / 8 + 1.5) if self.scale == "level" else d + self.offset)
        return np.array(out)

    def settings(self):
        return {"offset": self.offset}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from cdbench.builders import build_spcd
    from cdbench.data.synthetic import make_synthetic_spcd

    tmp = tmp_path_factory.mktemp("evalds")
    root = make_synthetic_spcd(tmp / "spcd", n_scenes=3, size=24, hide_test_scores=False)
    full = build_spcd(root, tmp / "ds", progress=False)
    labels = build_spcd(root, tmp / "ds-labels", labels_only=True, progress=False)
    hidden = make_synthetic_spcd(tmp / "spcd-hidden", n_scenes=2, size=24)
    hidden_ds = build_spcd(hidden, tmp / "ds-hidden", progress=False)
    return {"full": full, "labels": labels, "hidden": hidden_ds}


def _labels(ds_dir, split="test"):
    from cdbench.data.dataset import open_split

    ds = open_split(ds_dir, "scores", split)
    return {p: (s, a, sc) for p, s, a, sc in zip(ds["pair_id"], ds["score"], ds["aligned"], ds["scene"])}


def _strip(m):
    return {k: v for k, v in m.items() if k not in ("created", "versions")}


def test_outputs_and_metrics_equal_direct_computation(dataset, tmp_path):
    r = evaluate_model(MeanAbsDiff(), dataset["full"], "scores", "test", tmp_path, n_boot=30, batch_size=5,
                       progress=False)
    out = tmp_path / "mean-abs-diff" / "scores-test"
    assert r.out_dir == out
    for f in ("predictions.jsonl", "submission.json", "metrics.json", "scatter.png", "table.md", "run.json"):
        assert (out / f).is_file(), f
    assert (out / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sub = json.loads((out / "submission.json").read_text())
    assert sub["schema_version"] == 1 and sub["model"]["name"] == "mean-abs-diff"
    assert sub["dataset"]["config"] == "scores" and sub["dataset"]["split"] == "test" and sub["dataset"]["fingerprint"]
    labels = _labels(dataset["full"])
    assert [p["pair_id"] for p in sub["predictions"]] == list(labels)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["subsets"]) == {"all", "aligned", "not_aligned"}
    assert metrics["versions"]["numpy"] and metrics["dataset"]["synthetic"] is True
    pred = np.array([p["score"] for p in sub["predictions"]])
    human = np.array([labels[p["pair_id"]][0] for p in sub["predictions"]], float)
    aligned = np.array([labels[p["pair_id"]][1] for p in sub["predictions"]])
    for name, m in (("all", np.ones_like(aligned)), ("aligned", aligned), ("not_aligned", ~aligned)):
        s = metrics["subsets"][name]
        assert s["n"] == int(m.sum())
        assert s["srcc"] == pytest.approx(spearmanr(pred[m], human[m]).statistic, abs=1e-12)
        assert s["krcc"] == pytest.approx(kendalltau(pred[m], human[m]).statistic, abs=1e-12)
        assert s["plcc_raw"] == pytest.approx(pearsonr(pred[m], human[m]).statistic, abs=1e-12)
        assert s["stress"] == pytest.approx(stress(pred[m], human[m]), abs=1e-9)
        assert s["fit"]["kind"] == "5pl" and len(s["fit"]["params"]) == 5
        assert set(s["ci95"]) >= {"srcc", "plcc", "stress", "n_boot", "seed"}
    assert "| all |" in (out / "table.md").read_text() and "| all |" in r.table


def test_submission_passes_the_leaderboard_schema(dataset, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    import cdbench.leaderboard as lb

    schema = json.loads((Path(lb.__file__).parent / "submission.schema.json").read_text())
    r = evaluate_model(MeanAbsDiff(), dataset["full"], "scores", "train", tmp_path, n_boot=0, progress=False,
                       plot=False)
    jsonschema.validate(json.loads((r.out_dir / "submission.json").read_text()), schema)


class Interrupt(Exception):
    pass


def test_resume_after_interruption_gives_the_same_results(dataset, tmp_path):
    ref = evaluate_model(MeanAbsDiff(), dataset["full"], "scores", "test", tmp_path / "a", n_boot=20, batch_size=4,
                         progress=False, plot=False)

    def stop_after_two(k):
        if k == 2:
            raise Interrupt

    first = MeanAbsDiff()
    with pytest.raises(Interrupt):
        evaluate_model(first, dataset["full"], "scores", "test", tmp_path / "b", n_boot=20, batch_size=4,
                       progress=False, plot=False, on_batch=stop_after_two)
    pred_file = tmp_path / "b" / "mean-abs-diff" / "scores-test" / "predictions.jsonl"
    assert len(read_jsonl(pred_file)) == 8 and len(first.seen) == 8
    assert not (pred_file.parent / "metrics.json").exists()
    second = MeanAbsDiff()
    r = evaluate_model(second, dataset["full"], "scores", "test", tmp_path / "b", n_boot=20, batch_size=4,
                       progress=False, plot=False)
    assert r.n_resumed == 8 and r.n_computed == ref.n_computed - 8
    assert not set(first.seen) & set(second.seen)  # no finished pair recomputed
    assert sorted(first.seen + second.seen) == sorted(_labels(dataset["full"]))
    a = json.loads((ref.out_dir / "submission.json").read_text())["predictions"]
    b = json.loads((r.out_dir / "submission.json").read_text())["predictions"]
    assert a == b
    assert _strip(ref.metrics) == _strip(r.metrics)


def test_kill_9_mid_run_then_rerun(dataset, tmp_path):
    """A real kill -9 in a subprocess after two saved batches, plus a torn half-written line."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_evaluate import MeanAbsDiff
        from cdbench.evaluation import evaluate_model
        def kill(k):
            if k == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        evaluate_model(MeanAbsDiff(), {str(dataset["full"])!r}, "scores", "test", {str(tmp_path)!r}, n_boot=0,
                       batch_size=4, progress=False, plot=False, on_batch=kill)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-500:]
    pred_file = tmp_path / "mean-abs-diff" / "scores-test" / "predictions.jsonl"
    assert len(read_jsonl(pred_file)) == 8
    with open(pred_file, "a") as f:  # a write cut by the kill
        f.write('{"pair_id": "I0000_01_01+I00')
    second = MeanAbsDiff()
    r = evaluate_model(second, dataset["full"], "scores", "test", tmp_path, n_boot=0, batch_size=4, progress=False,
                       plot=False)
    assert r.n_resumed == 8 and len(second.seen) == len(_labels(dataset["full"])) - 8
    ref = evaluate_model(MeanAbsDiff(), dataset["full"], "scores", "test", tmp_path / "ref", n_boot=0,
                         progress=False, plot=False)
    assert _strip(ref.metrics) == _strip(r.metrics)
    assert len(read_jsonl(pred_file)) == len(_labels(dataset["full"]))


def test_rerun_with_other_settings_is_refused(dataset, tmp_path):
    evaluate_model(MeanAbsDiff(), dataset["full"], "scores", "train", tmp_path, n_boot=0, progress=False, plot=False)
    with pytest.raises(DataError, match="another model"):
        evaluate_model(MeanAbsDiff(offset=1.0), dataset["full"], "scores", "train", tmp_path, n_boot=0,
                       progress=False, plot=False)
    r = evaluate_model(MeanAbsDiff(offset=1.0), dataset["full"], "scores", "train", tmp_path, n_boot=0,
                       progress=False, plot=False, overwrite=True)
    assert r.n_resumed == 0


def test_level_scale_model_stress_on_score_scale(dataset, tmp_path):
    r = evaluate_model(MeanAbsDiff(scale="level"), dataset["full"], "scores", "test", tmp_path, n_boot=0,
                       progress=False, plot=False)
    sub = json.loads((r.out_dir / "submission.json").read_text())
    labels = _labels(dataset["full"])
    x = np.array([p["score"] for p in sub["predictions"]])
    y = np.array([labels[p["pair_id"]][0] for p in sub["predictions"]], float)
    assert r.metrics["settings"]["scale"] == "level"
    assert r.metrics["subsets"]["all"]["stress"] == pytest.approx(stress(level_value_to_score(x), y), abs=1e-9)


def test_score_cli_on_labels_only_dataset_and_submission(dataset, tmp_path, capsys):
    r = evaluate_model(MeanAbsDiff(), dataset["full"], "scores", "test", tmp_path, n_boot=10, progress=False,
                       plot=False)
    for f in ("predictions.jsonl", "submission.json"):
        assert main(["score", str(r.out_dir / f), "--dataset", str(dataset["labels"]), "--n-boot", "10",
                     "--out", str(tmp_path / f"m-{f}.json")]) == 0
        m = json.loads((tmp_path / f"m-{f}.json").read_text())
        assert m["dataset"]["labels_only"] is True
        assert _strip(m["subsets"]) == _strip(r.metrics["subsets"])
    out = capsys.readouterr().out
    assert "| all |" in out and "| not aligned |" in out


def test_score_partial_and_foreign_predictions(dataset, tmp_path, capsys):
    r = evaluate_model(MeanAbsDiff(), dataset["full"], "scores", "test", tmp_path, n_boot=0, progress=False,
                       plot=False)
    recs = read_jsonl(r.predictions_path)
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(json.dumps(x) + "\n" for x in recs[:-3]))
    assert main(["score", str(partial), "--dataset", str(dataset["full"])]) == 2
    assert "3 of" in capsys.readouterr().err
    m = score_predictions(partial, dataset["full"], "scores", "test", n_boot=0, allow_missing=True)
    assert m["coverage"] == {"n_pairs": len(recs), "n_predicted": len(recs) - 3, "n_missing": 3, "n_unscored": 0}
    assert main(["score", str(r.predictions_path), "--dataset", str(dataset["full"]), "--split", "train"]) == 2
    assert "not in this split" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"pair_id": "x", "score": "high"}\n')
    assert main(["score", str(bad), "--dataset", str(dataset["full"])]) == 2
    assert "finite number" in capsys.readouterr().err


def test_cli_evaluate_errors_are_one_line(dataset, tmp_path, capsys):
    cases = [
        (["--model", "no-such-model", "--dataset", str(dataset["full"])], "unknown model"),
        (["--model", "ciede2000", "--dataset", str(tmp_path)], "not a cdbench dataset"),
        (["--model", "ciede2000", "--dataset", str(dataset["hidden"]), "--split", "test"], "no human scores"),
        (["--model", "ciede2000", "--dataset", str(dataset["full"]), "--split", "nope"], "no split"),
        (["--model", "ciede2000", "--dataset", str(dataset["labels"]), "--split", "train"], "--images DIR"),
    ]
    for argv, msg in cases:
        assert main(["evaluate", *argv, "--out", str(tmp_path / "r")]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert msg in err and err.count("\n") == 0 and err.startswith("cdbench: error:"), err


def test_cli_evaluate_formula_end_to_end(dataset, tmp_path, capsys):
    assert main(["evaluate", "--model", "cie76", "--dataset", str(dataset["full"]), "--split", "train",
                 "--out", str(tmp_path), "--n-boot", "10", "--fit", "4pl", "--option", "fast=false",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "PLCC (4pl)" in out and "cie76" in out
    m = json.loads((tmp_path / "cie76" / "scores-train" / "metrics.json").read_text())
    assert m["model"]["kind"] == "formula" and m["subsets"]["all"]["fit"]["kind"] == "4pl"
    assert os.path.getsize(tmp_path / "cie76" / "scores-train" / "scatter.png") > 1000


def test_labels_only_dataset_with_images_folder(dataset, tmp_path):
    spcd_images = Path(dataset["full"]).parent / "spcd" / "images"
    a = evaluate_model(MeanAbsDiff(), dataset["labels"], "scores", "test", tmp_path / "a", n_boot=0, progress=False,
                       plot=False, images=spcd_images)
    b = evaluate_model(MeanAbsDiff(), dataset["full"], "scores", "test", tmp_path / "b", n_boot=0, progress=False,
                       plot=False)
    assert read_jsonl(a.predictions_path) == read_jsonl(b.predictions_path)
    with pytest.raises(DataError, match="--images"):
        evaluate_model(MeanAbsDiff(), dataset["labels"], "scores", "test", tmp_path / "c", progress=False)
    with pytest.raises(DataError, match="images folder not found"):
        evaluate_model(MeanAbsDiff(), dataset["labels"], "scores", "test", tmp_path / "c", progress=False,
                       images=tmp_path / "nowhere")


def test_jsonable_makes_any_result_json_safe():
    import math

    from cdbench.evaluation import jsonable

    obj = {"a": math.nan, "b": np.float32(1.5), "c": (np.int64(2), np.inf), "d": Path("/x/y"), "e": np.arange(2),
           "f": np.bool_(True), "g": None, 3: "s"}
    out = jsonable(obj)
    assert out == {"a": None, "b": 1.5, "c": [2, None], "d": "/x/y", "e": [0, 1], "f": True, "g": None, "3": "s"}
    json.dumps(out, allow_nan=False)


def test_concurrent_run_into_the_same_folder_is_refused(dataset, tmp_path):
    pytest.importorskip("fcntl")
    from cdbench.evaluation.runner import run_lock

    out = tmp_path / "mean-abs-diff" / "scores-test"
    out.mkdir(parents=True)
    with run_lock(out):
        with pytest.raises(DataError, match="another cdbench evaluate"):
            evaluate_model(MeanAbsDiff(), dataset["full"], "scores", "test", tmp_path, n_boot=0, progress=False)
    r = evaluate_model(MeanAbsDiff(), dataset["full"], "scores", "test", tmp_path, n_boot=0, progress=False,
                       plot=False)
    assert r.n_computed == len(_labels(dataset["full"]))
