"""``cdbench reproduce --table NAME --dataset DIR [--out DIR]``: the papers' tables."""

from __future__ import annotations

import argparse

TABLE_NAMES = ("spcd-measures", "mspcd-scoring", "mspcd-description")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="run the baselines of a paper table and write it (Markdown, LaTeX, CSV)",
                       description="Run every baseline listed for TABLE in baselines/ (one YAML spec each) on a "
                                   "built dataset and print the table in the paper's layout. Baselines that cannot "
                                   "run here (no weights, no GPU) are listed with the reason.")
    p.add_argument("--table", required=True, choices=TABLE_NAMES)
    p.add_argument("--dataset", required=True, help="built dataset folder (SPCD for spcd-measures, M-SPCD otherwise)")
    p.add_argument("--split", default="test", help="split to evaluate on (default: test; must have human labels)")
    p.add_argument("--out", default="reproduce", help="output folder (default: ./reproduce)")
    p.add_argument("--baselines", help="folder of baseline specs (default: the specs shipped with cdbench)")
    p.add_argument("--weights", action="append", default=[], metavar="ID=PATH",
                   help="weights / checkpoint folder of a baseline, e.g. cdnet=ckpt/ (repeatable)")
    p.add_argument("--only", help="comma-separated baseline ids to run (default: all of the table)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for the CIs (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--allow-cpu", action="store_true", help="run GPU baselines on the CPU anyway")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cdbench.errors import DataError
    from cdbench.reproduce import reproduce_table

    weights = {}
    for item in args.weights:
        key, sep, path = item.partition("=")
        if not sep or not key or not path:
            raise DataError(f"--weights {item!r}: expected ID=PATH")
        weights[key.strip()] = path.strip()
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    result = reproduce_table(args.table, args.dataset, args.out, split=args.split, baselines_dir=args.baselines,
                             weights=weights, only=only, n_boot=args.n_boot, seed=args.seed,
                             allow_cpu=args.allow_cpu, progress=not args.no_progress, batch_size=args.batch_size)
    print(result.markdown)
    print("written: " + ", ".join(str(p) for p in result.files.values()))
    return 0
