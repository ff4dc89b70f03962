"""The ``brainres`` command line: a thin layer over the Python API.

Every command ends, for anything the user can cause (a bad file, option or
pipeline, a folder that cannot be written, a full disk), in one
``brainres: error: ...`` message and exit status 2, never in a traceback.
Anything else (a bug) ends in ``brainres: error: unexpected ...`` and exit
status 1. ``brainres --debug COMMAND`` (or ``BRAINRES_DEBUG=1``) prints the
traceback as well.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from brainres.errors import BrainresError


def build_parser() -> argparse.ArgumentParser:
    from brainres import __version__
    from brainres.commands import MODULES

    parser = argparse.ArgumentParser(
        prog="brainres",
        description="Compare resource-constrained neural network models with human behaviour and brains.",
    )
    parser.add_argument("--version", action="version", version=f"brainres {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also BRAINRES_DEBUG=1)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in MODULES:
        importlib.import_module(f"brainres.commands.{name}").register(subparsers)
    return parser


def describe_error(err: BaseException) -> tuple[str, int]:
    """The one-line message (first line; problem lists follow) and exit status of an error."""
    from brainres.data.io import os_error_path, os_problem

    if isinstance(err, BrainresError):
        return str(err), 2
    if isinstance(err, OSError):
        # permission, read-only file system, disk full, missing file: the path and the cause in words
        where = os_error_path(err)
        other = f" -> {err.filename2}" if getattr(err, "filename2", None) else ""
        return (f"{where}{other}: {os_problem(err)}" if where != "?" else os_problem(err)), 2
    if isinstance(err, MemoryError):
        return "out of memory (try fewer workers, a smaller batch_size, or fewer stimuli at once)", 2
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return (f"unexpected {type(err).__name__}{': ' + text if text else ''} (a bug in brainres or in a plug-in; "
            "'brainres --debug ...' shows where, and please report it)"), 1


def _debug_requested(argv) -> bool:
    return "--debug" in (argv if argv is not None else sys.argv[1:]) or \
        os.environ.get("BRAINRES_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    debug = _debug_requested(argv)
    try:
        args = build_parser().parse_args(argv)
        debug = debug or args.debug
        return int(args.func(args) or 0)
    except SystemExit:
        raise  # argparse: usage errors and --help, already printed
    except KeyboardInterrupt:
        print("brainres: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001: the command line turns every error into one message
        if debug:
            traceback.print_exc()
        message, status = describe_error(err)
        print(f"brainres: error: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
