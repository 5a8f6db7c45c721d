"""``cdbench leaderboard validate|submit|render|import-csv|export-csv``."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leaderboard", help="validate and submit results, render the leaderboard page",
                       description="The cdbench leaderboard: JSON submissions (schema in "
                                   "leaderboard/submission.schema.json), recomputed metrics, a static page.")
    cmds = p.add_subparsers(dest="leaderboard_command", metavar="ACTION", required=True)

    v = cmds.add_parser("validate", help="check a submission file (exit 0 when valid, else 1 with one line "
                                         "per problem on stderr)")
    v.add_argument("file", help="submission JSON (e.g. results/<model>/scores-test/submission.json)")
    v.add_argument("--dataset", help="built dataset folder: also check the dataset, split and pair ids")
    v.set_defaults(func=_validate)

    s = cmds.add_parser("submit", help="validate, score (all subsets, bootstrap CIs) and add to the board")
    s.add_argument("file", help="submission JSON")
    s.add_argument("--dataset", required=True, help="built dataset folder holding the labels")
    s.add_argument("--board", default="leaderboard", help="board folder (default: ./leaderboard)")
    s.add_argument("--replace", action="store_true", help="replace the entry of a model already on the board")
    s.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for the 95%% CIs (default 1000)")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    s.add_argument("--render", metavar="SITE", help="also render the page to this folder")
    s.set_defaults(func=_submit)

    r = cmds.add_parser("render", help="write the static page (index.html) and a Markdown table")
    r.add_argument("--board", default="leaderboard", help="board folder (default: ./leaderboard)")
    r.add_argument("--out", required=True, help="output folder for index.html and leaderboard.md")
    r.add_argument("--title", default="cdbench leaderboard")
    r.set_defaults(func=_render)

    b = cmds.add_parser("rebuild", help="re-validate and re-score every stored submission, rewrite board.json")
    b.add_argument("--board", default="leaderboard", help="board folder (default: ./leaderboard)")
    b.add_argument("--dataset", required=True, help="built dataset folder holding the labels")
    b.set_defaults(func=_rebuild)

    i = cmds.add_parser("import-csv", help="SPCD competition id,score CSV -> submission JSON")
    i.add_argument("csv", help="competition submission (id,score)")
    i.add_argument("--pairs", required=True, help="the competition's test_data.csv the ids are rows of")
    i.add_argument("--model-name", required=True)
    i.add_argument("--kind", choices=("formula", "learned", "mllm", "other"), default="other")
    i.add_argument("--url")
    i.add_argument("--dataset", help="built SPCD dataset folder (fills in its name and fingerprint)")
    i.add_argument("--split", default="test", help="dataset split the pairs belong to (default: test)")
    i.add_argument("--out", required=True, help="submission JSON to write")
    i.set_defaults(func=_import_csv)

    e = cmds.add_parser("export-csv", help="submission JSON -> SPCD competition id,score CSV")
    e.add_argument("file", help="scores submission JSON")
    e.add_argument("--pairs", required=True, help="the competition's test_data.csv (id = its row number)")
    e.add_argument("--out", required=True, help="CSV to write")
    e.set_defaults(func=_export_csv)


def _problems_exit(lines: list[str]) -> int:
    for line in lines:
        print(line, file=sys.stderr)
    return 1


def _validate(args: argparse.Namespace) -> int:
    from cdbench.leaderboard.validate import claimed_split, validate_submission

    result = validate_submission(args.file)
    claimed = claimed_split(result.document)
    if args.dataset and claimed:
        from cdbench.leaderboard.scoring import load_split_labels

        ref = load_split_labels(args.dataset, *claimed).reference
        result = validate_submission(result.document, ref)
    if not result.ok:
        return _problems_exit(result.lines())
    sub = result.submission
    scope = "" if args.dataset else " (structure only; give --dataset to check the pair ids)"
    print(f"{args.file}: valid: {sub['model']['name']!r}, {len(sub['predictions']):,} predictions for "
          f"{sub['dataset']['name']}/{sub['dataset']['config']}/{sub['dataset']['split']}{scope}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from cdbench.leaderboard.board import add_entry, make_entry
    from cdbench.leaderboard.scoring import load_split_labels, score_submission
    from cdbench.leaderboard.validate import claimed_split, validate_submission

    result = validate_submission(args.file)
    claimed = claimed_split(result.document)
    if claimed:
        labels = load_split_labels(args.dataset, *claimed)
        result = validate_submission(result.document, labels.reference)
    if not result.ok:
        return _problems_exit(result.lines())
    sub = result.submission
    scored = score_submission(sub, args.dataset, labels, n_boot=args.n_boot, seed=args.seed)
    entry = make_entry(sub, scored.metrics, scored.scatter, scoring=scored.scoring)
    board = add_entry(args.board, entry, sub, replace=args.replace)
    mine = next(e for e in board["entries"] if e["model"]["name"] == sub["model"]["name"]
                and e["task"] == entry["task"] and e["dataset"]["name"] == entry["dataset"]["name"]
                and e["dataset"]["split"] == entry["dataset"]["split"])
    total = sum(1 for e in board["entries"] if (e["task"], e["dataset"]["name"], e["dataset"]["split"])
                == (mine["task"], mine["dataset"]["name"], mine["dataset"]["split"]))
    print(f"{sub['model']['name']!r}: rank {mine['rank']} of {total} on {entry['task']} "
          f"{entry['dataset']['name']}/{entry['dataset']['split']} (board: {args.board}/board.json)")
    if args.render:
        from cdbench.leaderboard.render import render_site

        print(f"page: {render_site(board, args.render)['html']}")
    return 0


def _render(args: argparse.Namespace) -> int:
    from cdbench.leaderboard.board import load_board
    from cdbench.leaderboard.render import render_markdown, render_site

    board = load_board(args.board)
    paths = render_site(board, args.out, title=args.title)
    print(render_markdown(board))
    print(f"page: {paths['html']}\nmarkdown: {paths['markdown']}")
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    from cdbench.leaderboard.scoring import rebuild_board

    board = rebuild_board(args.board, args.dataset, write=True)
    print(f"{args.board}/board.json: {len(board['entries'])} entries rebuilt from their submissions")
    return 0


def _import_csv(args: argparse.Namespace) -> int:
    from cdbench.io import atomic_write_json
    from cdbench.leaderboard.competition import import_competition_csv
    from cdbench.leaderboard.validate import validate_submission

    model = {"name": args.model_name, "kind": args.kind, **({"url": args.url} if args.url else {})}
    dataset = {"split": args.split}
    if args.dataset:
        from cdbench.data.dataset import dataset_info

        info = dataset_info(args.dataset)
        dataset.update(name=info.get("name") or "spcd", fingerprint=info.get("label_fingerprint"))
    sub = import_competition_csv(args.csv, args.pairs, model, dataset)
    result = validate_submission(sub)
    if not result.ok:
        return _problems_exit(result.lines())
    atomic_write_json(args.out, sub)
    print(f"{args.out}: {len(sub['predictions']):,} predictions of {args.model_name!r}")
    return 0


def _export_csv(args: argparse.Namespace) -> int:
    from cdbench.leaderboard.competition import export_competition_csv
    from cdbench.leaderboard.validate import validate_submission

    result = validate_submission(args.file)
    if not result.ok:
        return _problems_exit(result.lines())
    n = export_competition_csv(result.submission, args.pairs, args.out)
    print(f"{args.out}: {n:,} rows (id = row number in {args.pairs})")
    return 0
