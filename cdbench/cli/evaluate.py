"""``cdbench evaluate``: run a model over a dataset split and write predictions, submission, metrics,
scatter plot and a Markdown table (resumable)."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from contextlib import contextmanager


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="evaluate a model on a dataset split (resumable; metrics, submission, plot)",
        description="Run a model over one split with a progress bar, appending predictions to "
        "OUT/<model>/<config>-<split>/predictions.jsonl as they are made (a rerun continues where it stopped), "
        "then write submission.json, metrics.json, scatter.png and table.md, and print the table.")
    p.add_argument("--model", required=True, help="registered name (e.g. ciede2000) or model folder")
    p.add_argument("--dataset", required=True, help="dataset folder built by `cdbench build`")
    p.add_argument("--config", default="scores", choices=("scores", "descriptions"))
    p.add_argument("--split", default="test")
    p.add_argument("--out", default="results", help="results root (default: results)")
    p.add_argument("--images", help="folder with the images by file name (for a --labels-only dataset)")
    add_metric_options(p)
    p.add_argument("--batch-size", type=int, default=None,
                   help="pairs per model call and per saved batch (default: the model's preferred chunk)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="device of the model (default: the model's)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="model option, repeatable (e.g. --option pooling=median); VALUE parsed as JSON if it can be")
    p.add_argument("--overwrite", action="store_true", help="discard earlier predictions in the output folder")
    p.add_argument("--no-plot", action="store_true", help="skip scatter.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def add_metric_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fit", default="5pl", choices=("5pl", "4pl", "none"),
                   help="logistic fit before PLCC/RMSE: 5pl (CD-Net, default), 4pl (pyiqa), none")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of scenes for 95%% CIs (0: none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--bertscore-model", help="BERTScore model (default: roberta-large if cached, else offline MiniLM)")


def parse_options(items: list[str]) -> dict:
    """``["k=v", ...]`` -> ``{k: json(v) or v}``."""
    from cdbench.errors import CDBenchError

    out = {}
    for item in items:
        if "=" not in item:
            raise CDBenchError(f"--option {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


@contextmanager
def one_line_warnings():
    """Collect warnings and print each distinct one as a single ``cdbench: note:`` line at the end."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            seen = set()
            for w in caught:
                if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning)):
                    continue
                msg = str(w.message).splitlines()[0]
                if msg not in seen:
                    seen.add(msg)
                    print(f"cdbench: note: {msg}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    from cdbench.evaluation import evaluate_model

    with one_line_warnings():
        r = evaluate_model(args.model, args.dataset, args.config, args.split, args.out, fit=args.fit,
                           batch_size=args.batch_size, n_boot=args.n_boot, seed=args.seed, device=args.device,
                           overwrite=args.overwrite, progress=not args.no_progress, plot=not args.no_plot,
                           model_options=parse_options(args.option), bertscore_model=args.bertscore_model,
                           images=args.images)
    if r is None:  # a rank other than 0 of a multi-process launch: rank 0 reports
        return 0
    ds = r.metrics["dataset"]
    print(f"\n{r.metrics['model'].get('name')} on {ds['name']} {ds['config']}/{ds['split']}"
          f"{' (SYNTHETIC data)' if ds.get('synthetic') else ''}"
          f"{f' ({r.n_resumed} pairs resumed)' if r.n_resumed else ''}\n")
    print(r.table)
    print(f"\nwrote {r.out_dir}/ (predictions.jsonl, submission.json, metrics.json"
          f"{', scatter.png' if args.config == 'scores' and not args.no_plot else ''}, table.md)")
    return 0
