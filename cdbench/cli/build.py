"""``cdbench build spcd|m-spcd``: build the Hugging Face dataset folders."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build the SPCD or M-SPCD dataset folder (HF datasets format)",
                       description="Build a Hugging Face dataset folder that datasets.load_dataset(OUT, 'scores') "
                       "reads offline. The folder is written atomically; building twice gives identical files.")
    which = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    spcd = which.add_parser("spcd", help="SPCD: images/ + score CSVs")
    spcd.add_argument("--root", required=True, help="SPCD root: images/ and *_data.csv")
    _common(spcd)
    mspcd = which.add_parser("m-spcd", help="M-SPCD: SPCD images + score_task/ depict_task/ [train/]")
    mspcd.add_argument("--spcd", required=True, help="SPCD root (images/ and score CSVs)")
    mspcd.add_argument("--annotations", required=True, help="M-SPCD root (score_task/, depict_task/, train/)")
    _common(mspcd)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--labels-only", action="store_true", help="no image columns (labels and metadata only)")
    p.add_argument("--allow-missing", action="store_true", help="drop pairs whose images are missing")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--push-to-hub", metavar="REPO", help="publish the built folder to the HF Hub")
    p.add_argument("--private", action="store_true", help="with --push-to-hub: create a private dataset repo")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cdbench.builders import build_mspcd, build_spcd, push_to_hub
    from cdbench.data.dataset import dataset_info

    common = {"labels_only": args.labels_only, "allow_missing": args.allow_missing, "overwrite": args.overwrite,
              "progress": not args.no_progress}
    if args.dataset == "spcd":
        out = build_spcd(args.root, args.out, **common)
    else:
        out = build_mspcd(args.spcd, args.annotations, args.out, **common)
    info = dataset_info(out)
    rows = ", ".join(f"{c}/{s}: {n}" for c, splits in info["num_rows"].items() for s, n in splits.items())
    print(f"built {out} ({rows}; {info['num_images']} images{', labels only' if info['labels_only'] else ''})")
    if args.push_to_hub:
        url = push_to_hub(out, args.push_to_hub, private=args.private)
        print(f"pushed to {url}")
    return 0
