"""Validating a full-size leaderboard submission: cdbench's bounded validator against its peers.

Side by side in one run, on the same bytes: a 30,000-pair scores submission and a 30,000-pair
description submission (about 15 MB, the issue's size): ``json.loads`` alone (the floor),
``jsonschema`` validating the whole parsed document against the same schema (the peer), and
``cdbench.leaderboard.validate_submission`` (safe parsing + schema + pair-id checks against the
split). Median of ``--repeat`` runs. Results to ``benchmarks/results/bench_leaderboard.json``.

    python benchmarks/bench_leaderboard.py [--pairs 30000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from cdbench.io import atomic_write_json
from cdbench.leaderboard.schema import submission_validator
from cdbench.leaderboard.validate import ReferenceSplit, validate_submission
from cdbench.versions import environment_versions

TEXT = ("The white balance shows a slight difference; brightness and contrast differ moderately; colour "
        "contrast is slightly different; overall brightness differs severely; overall colour moderately; "
        "dark details slightly; light details moderately. ")


def _documents(n: int) -> dict[str, tuple[bytes, ReferenceSplit]]:
    ids = [f"I{i // 30:04d}_01_{i % 6 + 1:02d}+I{i // 30:04d}_0{i % 5 + 2}_01-{i}" for i in range(n)]
    out = {}
    for config, key, make in (("scores", "score", lambda i: 1.4 + (i % 1000) / 71.3),
                              ("descriptions", "text", lambda i: TEXT * 2)):
        doc = {"schema_version": 1, "model": {"name": "bench", "kind": "other"},
               "dataset": {"name": "m-spcd", "config": config, "split": "test"},
               "predictions": [{"pair_id": p, key: make(i)} for i, p in enumerate(ids)]}
        out[config] = (json.dumps(doc).encode(), ReferenceSplit("m-spcd", config, "test", ids))
    return out


def _time(f, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=30_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_leaderboard.json"))
    args = ap.parse_args()
    validator = submission_validator()
    results = {}
    for config, (data, ref) in _documents(args.pairs).items():
        assert validate_submission(data, ref).ok
        row = {"bytes": len(data),
               "json_loads_s": _time(lambda d=data: json.loads(d), args.repeat),
               "jsonschema_full_s": _time(lambda d=data: validator.validate(json.loads(d)), args.repeat),
               "cdbench_validate_s": _time(lambda d=data, r=ref: validate_submission(d, r), args.repeat)}
        row["speedup_vs_jsonschema"] = row["jsonschema_full_s"] / row["cdbench_validate_s"]
        results[config] = row
        print(f"{config:12s} {len(data) / 1e6:6.1f} MB  json.loads {row['json_loads_s']:.2f} s  "
              f"jsonschema (whole document) {row['jsonschema_full_s']:.2f} s  "
              f"cdbench validate_submission {row['cdbench_validate_s']:.2f} s  "
              f"({row['speedup_vs_jsonschema']:.1f}x faster than jsonschema, and checks the pair ids too)")
    atomic_write_json(args.out, {"benchmark": "leaderboard submission validation", "pairs": args.pairs,
                                 "repeat": args.repeat, "results": results, "versions": environment_versions(
                                     ("jsonschema",))})
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
