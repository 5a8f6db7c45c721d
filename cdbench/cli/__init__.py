"""The ``cdbench`` command line: one sub-command per module of this package.

Each module in :data:`COMMAND_MODULES` has ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``. Modules import their heavy dependencies inside ``func`` so that
``cdbench --help`` stays fast. A :class:`~cdbench.errors.CDBenchError` (bad input) is printed as
one line ``cdbench: error: ...`` and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cdbench import __version__
from cdbench.errors import CDBenchError

COMMAND_MODULES: tuple[str, ...] = (
    "cdbench.cli.build",
    "cdbench.cli.evaluate",
    "cdbench.cli.cdmap",
    "cdbench.cli.convert",
    "cdbench.cli.train",
    "cdbench.cli.score",
    "cdbench.cli.demo",
    "cdbench.cli.leaderboard",
    "cdbench.cli.reproduce",
    "cdbench.cli.finetune",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdbench",
        description="Benchmark for perceptual colour difference (SPCD / M-SPCD): build datasets, "
        "evaluate colour-difference measures and multimodal LLMs, run the leaderboard.",
    )
    parser.add_argument("--version", action="version", version=f"cdbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except CDBenchError as e:
        print(f"cdbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cdbench: interrupted (finished work is kept; rerun to continue)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
