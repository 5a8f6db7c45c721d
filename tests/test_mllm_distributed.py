"""Sharding a split across two gloo processes (torchrun) gives the file one process writes."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from launchers import launcher_command  # noqa: E402

from cdbench.io import read_jsonl  # noqa: E402
from cdbench.models.mllm.distributed import parts_dir, predict_sharded, shard_range  # noqa: E402

WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    import torch.distributed as dist
    from cdbench import create_model
    from cdbench.models.mllm.distributed import predict_sharded

    folder, images, out = sys.argv[1:4]
    arr = np.load(images)
    pairs = [(arr[2 * i], arr[2 * i + 1]) for i in range(len(arr) // 2)]
    model = create_model(folder, batch_size=2, max_new_tokens=3, workers=1, do_sample=True, seed=4, temperature=1.5)
    res = predict_sharded(model, pairs, out, ids=[f"p{i:02d}" for i in range(len(pairs))], task="both")
    # one file per rank: the two processes' stdout interleave character by character
    with open(f"{out}.rank{dist.get_rank()}", "w") as f:
        f.write(f"rank {dist.get_rank()} of {dist.get_world_size()} -> {res}")
    dist.destroy_process_group()
""")


def test_shard_range_covers_everything_once():
    for n in (0, 1, 5, 7, 64):
        for w in (1, 2, 3, 8):
            idx = [i for r in range(w) for i in shard_range(n, r, w)]
            assert idx == list(range(n))
            sizes = [len(shard_range(n, r, w)) for r in range(w)]
            assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError):
        shard_range(3, 2, 2)
    for n, w, b in ((10, 3, 4), (5, 2, 2), (1, 4, 8), (64, 8, 3)):
        shards = [shard_range(n, r, w, align=b) for r in range(w)]
        assert [i for s in shards for i in s] == list(range(n))
        assert all(s.start % b == 0 for s in shards if len(s))  # starts on batch boundaries


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from cdbench.models.mplug_owl2 import build_tiny_mplug_owl2

    return build_tiny_mplug_owl2(tmp_path_factory.mktemp("tiny") / "m", seed=3, weight_scale=3.0)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    rng = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("imgs") / "pairs.npy"
    np.save(path, rng.integers(0, 256, (10, 40, 40, 3), dtype=np.uint8))  # 5 pairs
    return path


@pytest.mark.slow  # two fresh interpreters importing torch + transformers: ~15-30 s on 2 cores
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_gloo_processes_write_the_single_process_file(launcher, folder, images, tmp_path, monkeypatch):
    """Scores, probabilities and sampled descriptions (per-pair noise: the same whichever rank draws them)."""
    from cdbench import create_model

    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    arr = np.load(images)
    pairs = [(arr[2 * i], arr[2 * i + 1]) for i in range(len(arr) // 2)]
    single = tmp_path / "single.jsonl"
    model = create_model(folder, batch_size=2, max_new_tokens=3, workers=1, do_sample=True, seed=4, temperature=1.5)
    assert [shard_range(5, r, 2, align=2) for r in (0, 1)] == [range(0, 2), range(2, 5)]
    assert predict_sharded(model, pairs, single, ids=[f"p{i:02d}" for i in range(5)], task="both") == single
    recs = read_jsonl(single)
    np.testing.assert_allclose([r["score"] for r in recs], model.score(pairs), atol=1e-9)
    assert [r["description"] for r in recs] == model.describe(pairs)

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    multi = tmp_path / "multi.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    proc = subprocess.run([*launcher_command(launcher), str(script), str(folder), str(images), str(multi)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert Path(f"{multi}.rank0").read_text() == f"rank 0 of 2 -> {multi}"
    assert Path(f"{multi}.rank1").read_text() == "rank 1 of 2 -> None"
    assert multi.read_bytes() == single.read_bytes()
    recs = read_jsonl(multi)
    assert [r["id"] for r in recs] == [f"p{i:02d}" for i in range(5)]
    assert all(set(r) == {"id", "score", "level_probs", "description"} for r in recs)
    assert not parts_dir(multi).exists()


def test_resume_skips_what_is_done(folder, images, tmp_path):
    """A killed run left part of its shard: the rerun predicts only the rest and merges all."""
    from cdbench import create_model
    from cdbench.io import append_jsonl

    arr = np.load(images)
    pairs = [(arr[2 * i], arr[2 * i + 1]) for i in range(len(arr) // 2)]
    model = create_model(folder, batch_size=2, workers=1)
    ref = tmp_path / "ref.jsonl"
    predict_sharded(model, pairs, ref)
    ref_recs = read_jsonl(ref)
    out = tmp_path / "out.jsonl"
    fake = dict(ref_recs[1], score=-1.0)  # a recognisable "already done" record
    append_jsonl(parts_dir(out) / "rank00000-of-00002.jsonl", [fake])
    calls = []
    orig = model.level_probabilities
    model.level_probabilities = lambda chunk, **kw: calls.append(len(chunk)) or orig(chunk, **kw)
    predict_sharded(model, pairs, out)
    assert sum(calls) == 4
    recs = read_jsonl(out)
    assert recs[1]["score"] == -1.0 and [r["id"] for r in recs] == [r["id"] for r in ref_recs]
    calls.clear()
    assert predict_sharded(model, pairs, out) == out and calls == []  # a finished file: nothing to redo
    assert read_jsonl(out) == recs
    for i in (0, 2, 3, 4):  # recomputed in other batches: equal up to float32 batch effects
        assert recs[i]["score"] == pytest.approx(ref_recs[i]["score"], abs=1e-5)
