"""The ``brainres`` command line: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import importlib
import sys

from brainres.errors import BrainresError


def build_parser() -> argparse.ArgumentParser:
    from brainres import __version__
    from brainres.commands import MODULES

    parser = argparse.ArgumentParser(
        prog="brainres",
        description="Compare resource-constrained neural network models with human behaviour and brains.",
    )
    parser.add_argument("--version", action="version", version=f"brainres {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in MODULES:
        importlib.import_module(f"brainres.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrainresError as err:
        print(f"brainres: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("brainres: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
