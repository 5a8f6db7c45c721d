"""``cdbench score``: metrics of an existing predictions.jsonl or submission.json (no model needed)."""

from __future__ import annotations

import argparse

from cdbench.cli.evaluate import add_metric_options, one_line_warnings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score", help="score a predictions.jsonl / submission.json against a dataset split",
        description="Compute the metrics of existing predictions with the same code as `cdbench evaluate` "
        "(works on a --labels-only dataset). Config and split default to the submission's own.")
    p.add_argument("predictions", help="predictions.jsonl ({pair_id, score|text} per line) or submission.json")
    p.add_argument("--dataset", required=True, help="dataset folder built by `cdbench build`")
    p.add_argument("--config", choices=("scores", "descriptions"), help="default: the submission's, else scores")
    p.add_argument("--split", help="default: the submission's, else test")
    add_metric_options(p)
    p.add_argument("--scale", choices=("difference", "level"),
                   help="prediction scale (default: the submission's model.scale, else difference)")
    p.add_argument("--allow-missing", action="store_true", help="score the covered pairs when some have no prediction")
    p.add_argument("--out", help="also write the metrics JSON here")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cdbench.evaluation import metrics_table, score_predictions
    from cdbench.evaluation.predictions import load_predictions_file
    from cdbench.io import atomic_write_json

    _, header = load_predictions_file(args.predictions)
    hdr = header.get("dataset") or {}
    config = args.config or hdr.get("config") or "scores"
    split = args.split or hdr.get("split") or "test"
    with one_line_warnings():
        metrics = score_predictions(args.predictions, args.dataset, config, split, fit=args.fit, n_boot=args.n_boot,
                                    seed=args.seed, scale=args.scale, allow_missing=args.allow_missing,
                                    bertscore_model=args.bertscore_model)
    cov = metrics["coverage"]
    name = metrics["model"].get("name") or args.predictions
    print(f"{name} on {metrics['dataset']['name']} {config}/{split}: {cov['n_predicted']} of {cov['n_pairs']} pairs"
          f"{' (SYNTHETIC data)' if metrics['dataset'].get('synthetic') else ''}\n")
    print(metrics_table(metrics))
    if args.out:
        atomic_write_json(args.out, metrics)
        print(f"\nwrote {args.out}")
    return 0
