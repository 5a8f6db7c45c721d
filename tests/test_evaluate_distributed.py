"""``cdbench evaluate`` under torchrun: two gloo processes shard the pairs and write the same
predictions and metrics as one process (rank 0 reports, rank 1 only predicts)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

pytest.importorskip("torch")

from launchers import launcher_command  # noqa: E402


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from cdbench.builders import build_spcd
    from cdbench.data.synthetic import make_synthetic_spcd

    root = tmp_path_factory.mktemp("dist-eval")
    make_synthetic_spcd(root / "spcd", n_scenes=3, size=32)
    return build_spcd(root / "spcd", root / "ds", progress=False)


@pytest.mark.slow
def test_two_processes_write_what_one_process_writes(dataset, tmp_path, monkeypatch):
    from cdbench.cli import main

    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    args = ["evaluate", "--model", "cie76", "--dataset", str(dataset), "--split", "train", "--n-boot", "20",
            "--no-plot", "--no-progress", "--batch-size", "4"]
    assert main([*args, "--out", str(tmp_path / "single")]) == 0

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*launcher_command("torchrun"), "-m", "cdbench", *args, "--out", str(tmp_path / "multi")],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    single, multi = tmp_path / "single/cie76/scores-train", tmp_path / "multi/cie76/scores-train"

    def preds(folder):
        return {json.loads(line)["pair_id"]: json.loads(line)["score"]
                for line in (folder / "predictions.jsonl").read_text().splitlines()}

    assert preds(multi) == preds(single)
    assert len(preds(multi)) == len((multi / "predictions.jsonl").read_text().splitlines())  # no duplicates
    m1 = json.loads((single / "metrics.json").read_text())["subsets"]
    m2 = json.loads((multi / "metrics.json").read_text())["subsets"]
    for subset in m1:
        for k in ("n", "srcc", "plcc", "stress"):
            assert m2[subset][k] == pytest.approx(m1[subset][k], rel=1e-12, nan_ok=True)
    assert not (multi / "predictions.sharded.jsonl").exists()
