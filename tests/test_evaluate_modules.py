"""The Hugging Face `evaluate` modules load offline with evaluate.load(path) and equal cdbench.metrics."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from cdbench.hf_evaluate import MODULES, module_path
from cdbench.metrics import correlation_metrics, stress, subset_metrics


@pytest.fixture(scope="module")
def evaluate(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_EVALUATE_OFFLINE", "1")
    mp.setenv("HF_MODULES_CACHE", str(tmp_path_factory.mktemp("hf_modules")))
    ev = pytest.importorskip("evaluate")
    yield ev
    mp.undo()


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    human = rng.uniform(1.4, 15.4, n)
    pred = human * rng.lognormal(0, 0.3, n)
    return pred, human, rng.random(n) < 0.6, np.array([f"I{i % 12:04d}" for i in range(n)])


def test_stress_module(evaluate):
    m = evaluate.load(module_path("stress"))
    assert m.compute(predictions=[1.0, 2.0, 3.0], references=[1.0, 2.0, 4.0])["stress"] == pytest.approx(
        100 * math.sqrt(70 / 4116))
    pred, human, _, _ = _data()
    assert m.compute(predictions=pred, references=human)["stress"] == pytest.approx(stress(pred, human), rel=1e-12)
    # incremental use, as evaluate modules allow
    for p, h in zip(pred, human):
        m.add(prediction=p, reference=h)
    assert m.compute()["stress"] == pytest.approx(stress(pred, human), rel=1e-12)


def test_cd_correlation_module(evaluate):
    m = evaluate.load(module_path("cd_correlation"))
    pred, human, aligned, scenes = _data()
    r = m.compute(predictions=pred, references=human, fit="4pl")
    ref = correlation_metrics(pred, human, fit="4pl")
    for k in ("n", "srcc", "krcc", "plcc", "plcc_raw", "rmse"):
        assert r[k] == pytest.approx(ref[k], rel=1e-12), k
    r = m.compute(predictions=pred, references=human, aligned=aligned, scenes=scenes, n_boot=20, seed=3)
    ref = subset_metrics(pred, human, aligned, scenes, n_boot=20, seed=3)
    assert r["aligned"]["srcc"] == pytest.approx(ref["aligned"]["srcc"])
    assert r["not_aligned"]["n"] == ref["not_aligned"]["n"]
    assert r["ci95"]["srcc"] == ref["all"]["ci95"]["srcc"]


def test_core_never_imports_evaluate():
    root = Path(module_path("stress")).parents[1]
    for path in root.rglob("*.py"):
        if "hf_evaluate" in path.parts and path.parent.name in MODULES:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "evaluate" or n.startswith("evaluate.") for n in names), path
