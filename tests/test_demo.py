"""`cdbench demo`: synthetic sample -> build -> classic measures -> table, and the same on real data."""

from __future__ import annotations

import json

from cdbench.cli import main


def test_demo_on_the_synthetic_sample(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--models", "cie76,ciede2000", "--n-boot", "10",
                 "--scenes", "2"]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "| cie76 |" in out and "| ciede2000 |" in out
    md = (tmp_path / "demo.md").read_text()
    assert md.startswith("SYNTHETIC") and "| ciede2000 |" in md
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["synthetic"] is True and summary["split"] == "test"
    assert set(summary["models"]) == {"cie76", "ciede2000"}
    for name in ("cie76", "ciede2000"):
        m = json.loads((tmp_path / "results" / name / "scores-test" / "metrics.json").read_text())
        assert m["dataset"]["synthetic"] is True and m["subsets"]["all"]["srcc"] is not None
    # deterministic: a second run gives the same numbers
    assert main(["demo", "--out", str(tmp_path / "again"), "--models", "cie76", "--n-boot", "10",
                 "--scenes", "2"]) == 0
    again = json.loads((tmp_path / "again" / "demo.json").read_text())
    assert again["models"]["cie76"] == summary["models"]["cie76"]


def test_demo_lists_every_formula():
    from cdbench.cli.demo import formula_models

    names = formula_models()
    assert {"cie76", "cie94", "ciede2000", "cmc"} <= set(names)
    assert "cdnet" not in names and "cd-net" not in names


def test_demo_on_real_spcd(shared_data, tmp_path, capsys):
    assert main(["demo", "--spcd", str(shared_data / "spcd"), "--out", str(tmp_path), "--models", "cie76",
                 "--n-boot", "0"]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" not in out and "| cie76 |" in out
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["synthetic"] is False and summary["split"] == "train"  # test scores are hidden
    assert summary["models"]["cie76"]["all"]["n"] == 13
