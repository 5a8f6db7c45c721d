"""Benchmark: the score metrics of one M-SPCD-sized prediction (5,975 pairs, 199 scenes), side by side
with the peers' procedures, in the same run.

Measured (median of ``--repeats``, alternating):

* ``fit_5pl_cdnet``: cdbench's 5PL (CD-Net starting values, Nelder-Mead) vs ``peer_cdnet_coeff_fit``,
  the CD-Net / CD-Flow ``coeff_fit`` transcribed (the same optimiser: the ratio shows cdbench adds
  nothing), and ``fit_4pl`` vs ``peer_pyiqa_fit_curve`` (pyiqa's ``fit_curve``).
* ``bootstrap``: ``subset_metrics`` with ``--n-boot`` scene resamples (all / aligned / not aligned,
  every statistic, logistic refitted per replicate) vs ``peer_bootstrap_cold``: the same resamples
  with each replicate scored from scratch the usual way (scipy's spearmanr / kendalltau / pearsonr,
  a cold-started 5PL fit), on ``--peer-boot`` replicates and scaled to ``--n-boot``.

    python benchmarks/bench_metrics.py                  # 5,975 pairs, 1,000 resamples
    python benchmarks/bench_metrics.py --n-boot 200     # quicker

Results: ``benchmarks/results/bench_metrics.json`` (with versions and the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "bench_metrics.json"


def _data(n: int, n_scenes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    human = rng.uniform(1.4, 15.4, n)
    pred = np.log(human) * 3 + rng.normal(0, 0.8, n)
    scenes = np.array([f"I{i % n_scenes:04d}" for i in rng.permutation(n)])
    aligned = rng.random(n) < 2 / 3
    return pred, human, aligned, scenes


def peer_cdnet_coeff_fit(obj, y):
    """CD-Net / CD-Flow ``coeff_func.coeff_fit`` (transcribed): Nelder-Mead 5PL, then PLCC/SRCC/KRCC/RMSE."""
    from scipy.optimize import fmin
    from scipy.stats import kendalltau, pearsonr, spearmanr

    def fitfun(t, x):
        return t[0] * (0.5 - (1 / (1 + np.exp(t[1] * (x - t[2]))))) + t[3] + t[4] * x

    t = np.array([abs(np.max(y) - np.min(y)), 1 / np.std(obj), np.mean(obj), np.mean(y), -1.0])
    tt = fmin(lambda t: np.sum((y - fitfun(t, obj)) ** 2), t, disp=False)
    fit = fitfun(tt, obj)
    return (pearsonr(fit, y)[0], spearmanr(fit, y).correlation, kendalltau(fit, y).correlation,
            pearsonr(obj, y)[0], np.sqrt(np.mean((y - fit) ** 2)))


def peer_pyiqa_fit_curve(x, y):
    """pyiqa ``fit_curve(x, y, 'logistic_4params')`` (transcribed), then the same numbers cdbench
    reports: SRCC, KRCC, raw PLCC, fitted PLCC and RMSE."""
    from scipy.optimize import curve_fit
    from scipy.stats import kendalltau, pearsonr, spearmanr

    def logistic_4params(x, b1, b2, b3, b4):
        return (b1 - b2) / (1 + np.exp(-(x - b3) / b4)) + b2

    betas, _ = curve_fit(logistic_4params, x, y, p0=[np.max(y), np.min(y), np.mean(x), np.std(x) / 4], maxfev=10000)
    m = logistic_4params(x, *betas)
    return (spearmanr(x, y)[0], kendalltau(x, y)[0], pearsonr(x, y)[0], pearsonr(m, y)[0],
            np.sqrt(np.mean((m - y) ** 2)))


def peer_bootstrap_cold(pred, human, aligned, scenes, n_boot, seed):
    """The same scene resamples, each replicate scored from scratch with scipy and a cold 5PL fit."""
    from scipy.stats import kendalltau, pearsonr, spearmanr

    from cdbench.metrics import fit_logistic, stress
    from cdbench.metrics.bootstrap import scene_groups

    for mask in (np.ones_like(aligned), aligned, ~aligned):
        x, y, sc = pred[mask], human[mask], scenes[mask]
        groups = scene_groups(sc, x.size)
        draws = np.random.default_rng(seed).integers(0, len(groups), size=(n_boot, len(groups)))
        for row in draws:
            idx = np.concatenate([groups[g] for g in row])
            xi, yi = x[idx], y[idx]
            f = fit_logistic(xi, yi, "5pl", method="lm")
            m = f.predict(xi)
            spearmanr(xi, yi), kendalltau(xi, yi), pearsonr(xi, yi), pearsonr(m, yi)
            np.sqrt(np.mean((m - yi) ** 2)), stress(xi, yi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5975)
    ap.add_argument("--scenes", type=int, default=199)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--peer-boot", type=int, default=50, help="replicates timed for the cold peer (then scaled)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    from cdbench.metrics import correlation_metrics, subset_metrics
    from cdbench.versions import environment_versions

    warnings.simplefilter("ignore")
    pred, human, aligned, scenes = _data(args.pairs, args.scenes)
    cases = {
        "fit_5pl_cdnet": lambda: correlation_metrics(pred, human, fit="5pl"),
        "peer_cdnet_coeff_fit": lambda: peer_cdnet_coeff_fit(pred, human),
        "fit_4pl": lambda: correlation_metrics(pred, human, fit="4pl"),
        "peer_pyiqa_fit_curve": lambda: peer_pyiqa_fit_curve(pred, human),
        "bootstrap": lambda: subset_metrics(pred, human, aligned, scenes, n_boot=args.n_boot, seed=0),
        "peer_bootstrap_cold": lambda: peer_bootstrap_cold(pred, human, aligned, scenes, args.peer_boot, 0),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    med["peer_bootstrap_cold"] *= args.n_boot / args.peer_boot  # scaled to the same number of replicates
    check = correlation_metrics(pred, human, fit="5pl")
    ref = peer_cdnet_coeff_fit(pred, human)
    result = {
        "benchmark": "bench_metrics", "pairs": args.pairs, "scenes": args.scenes, "n_boot": args.n_boot,
        "peer_boot_timed": args.peer_boot, "repeats": args.repeats, "median_seconds": med,
        "ratios": {"fit_5pl_vs_cdnet_code": med["fit_5pl_cdnet"] / med["peer_cdnet_coeff_fit"],
                   "fit_4pl_vs_pyiqa": med["fit_4pl"] / med["peer_pyiqa_fit_curve"],
                   "bootstrap_speedup_vs_cold": med["peer_bootstrap_cold"] / med["bootstrap"]},
        "agreement": {"plcc_cdbench": check["plcc"], "plcc_cdnet_code": float(ref[0]),
                      "abs_diff": abs(check["plcc"] - float(ref[0]))},
        "cpu_count": os.cpu_count(), "versions": environment_versions(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("median_seconds", "ratios", "agreement")}, indent=2))


if __name__ == "__main__":
    main()
