"""Presenting metrics: JSON-safe values, Markdown tables and the scatter plot."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cdbench.metrics.subsets import SUBSETS

SUBSET_LABELS = {"all": "all", "aligned": "aligned", "not_aligned": "not aligned"}
SUBSET_COLOURS = {"aligned": "#1f77b4", "not_aligned": "#d62728", "all": "#333333"}


def jsonable(obj: Any) -> Any:
    """A copy of ``obj`` that ``json.dumps(allow_nan=False)`` accepts: NaN/inf -> None, numpy
    scalars and arrays -> Python numbers and lists, tuples -> lists, paths and other objects -> str."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)  # anything else a model puts in its settings (dtype, device, ...)


def _num(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def _ci(m: Mapping, key: str, digits: int = 3) -> str:
    ci = (m.get("ci95") or {}).get(key)
    if not ci or ci[0] is None or ci[1] is None or not all(math.isfinite(c) for c in ci):
        return ""
    return f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def scores_table(metrics: Mapping[str, Any], with_ci: bool = True) -> str:
    """Markdown table of a scores metrics dict: one row per subset."""
    fit = metrics.get("settings", {}).get("fit", "5pl")
    head = f"| subset | n | SRCC | KRCC | PLCC ({fit}) | PLCC raw | RMSE | STRESS |"
    rows = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in SUBSETS:
        m = metrics["subsets"].get(name)
        if m is None:
            continue
        c = (lambda k, m=m: _ci(m, k)) if with_ci else (lambda k: "")
        rows.append(f"| {SUBSET_LABELS[name]} | {m['n']} | {_num(m['srcc'])}{c('srcc')} | {_num(m['krcc'])} | "
                    f"{_num(m['plcc'])}{c('plcc')} | {_num(m['plcc_raw'])} | {_num(m['rmse'])} | "
                    f"{_num(m['stress'], 2)}{_ci(m, 'stress', 2) if with_ci else ''} |")
    return "\n".join(rows)


def descriptions_table(metrics: Mapping[str, Any]) -> str:
    """Markdown table of a descriptions metrics dict: caption and attribute metrics per subset."""
    cols = [("BLEU-4", "bleu4"), ("METEOR", "meteor"), ("ROUGE-L", "rouge_l"), ("CIDEr", "cider"),
            ("BERTScore F1", "bertscore_f1"), ("parse rate", "parse_rate"), ("attr. acc.", "accuracy"),
            ("attr. macro-F1", "macro_f1")]
    rows = ["| subset | n | " + " | ".join(c for c, _ in cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for name in SUBSETS:
        m = metrics["subsets"].get(name)
        if m is None:
            continue
        vals = [_num(m.get("captions", {}).get(k, m.get("attributes", {}).get(k))) for _, k in cols]
        rows.append(f"| {SUBSET_LABELS[name]} | {m['n']} | " + " | ".join(vals) + " |")
    return "\n".join(rows)


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """The Markdown table of a metrics dict of either task."""
    return descriptions_table(metrics) if metrics.get("task") == "descriptions" else scores_table(metrics)


def models_table(results: Mapping[str, Mapping[str, Any]], subsets: Sequence[str] = SUBSETS) -> str:
    """One row per model: SRCC / PLCC / STRESS of each subset (the CD papers' comparison table)."""
    head = "| model | " + " | ".join(f"SRCC {SUBSET_LABELS[s]} | PLCC {SUBSET_LABELS[s]} | STRESS {SUBSET_LABELS[s]}"
                                    for s in subsets) + " |"
    rows = [head, "|---|" + "---:|" * (3 * len(subsets))]
    for name, metrics in results.items():
        cells = []
        for s in subsets:
            m = metrics["subsets"].get(s, {})
            cells += [_num(m.get("srcc")), _num(m.get("plcc")), _num(m.get("stress"), 2)]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def scatter_plot(path: str | os.PathLike, pred: np.ndarray, human: np.ndarray, aligned: np.ndarray,
                 metrics: Mapping[str, Any], title: str) -> None:
    """Prediction vs human score, one colour per subset, with each subset's fitted logistic curve;
    written atomically as a PNG (matplotlib's Agg backend, no display needed)."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from cdbench.io import atomic_write_bytes
    from cdbench.metrics.logistic import LogisticFit

    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    ax = fig.add_subplot()
    pred, human, aligned = np.asarray(pred, float), np.asarray(human, float), np.asarray(aligned, bool)
    for name, mask in (("aligned", aligned), ("not_aligned", ~aligned)):
        if mask.any():
            m = metrics["subsets"].get(name, {})
            ax.scatter(pred[mask], human[mask], s=10, alpha=0.6, color=SUBSET_COLOURS[name],
                       label=f"{SUBSET_LABELS[name]} (n={int(mask.sum())}, SRCC {_num(m.get('srcc'), 3)})")
    masks = {"all": np.ones_like(aligned), "aligned": aligned, "not_aligned": ~aligned}
    for name in SUBSETS:
        if masks[name].any():
            xs = np.linspace(np.min(pred[masks[name]]), np.max(pred[masks[name]]), 200)  # each over its own range
            fit = (metrics["subsets"].get(name) or {}).get("fit") or {}
            params = fit.get("params") or []
            if fit.get("kind") in ("5pl", "4pl") and params and all(p is not None for p in params):
                curve = LogisticFit(fit["kind"], [float(p) for p in params]).predict(xs)
                ax.plot(xs, curve, color=SUBSET_COLOURS[name], lw=2 if name == "all" else 1,
                        ls="-" if name == "all" else "--", label=f"{fit['kind']} fit ({SUBSET_LABELS[name]})")
    ax.set_xlabel("prediction")
    ax.set_ylabel("human colour-difference score")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
