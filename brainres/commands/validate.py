"""``brainres validate FILE``: check a netCDF file against the data model."""

from __future__ import annotations
from brainres.commands import HelpFormatter


def register(subparsers) -> None:
    parser = subparsers.add_parser("validate", formatter_class=HelpFormatter, help="check a netCDF file against the brainres data model")
    parser.add_argument("path")
    parser.add_argument("--kind", help="data-model kind (default: the file's brainres_kind attribute; needed for a "
                                       "file without one)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from brainres.data.io import read_netcdf
    from brainres.data.schema import KINDS
    from brainres.errors import DataFileError

    if args.kind is not None and args.kind not in KINDS:
        raise DataFileError(args.path, f"--kind {args.kind!r} is not a data-model kind; kinds: {', '.join(KINDS)}")
    ds = read_netcdf(args.path, validate_kind=args.kind)
    kind = args.kind or ds.attrs.get("brainres_kind")
    if not kind:
        raise DataFileError(args.path, "the file does not say what it is (no attribute brainres_kind), so it cannot "
                                       f"be checked; pass --kind KIND (one of {', '.join(KINDS)})")
    print(f"{args.path}: valid {kind} dataset, dims {dict(ds.sizes)}")
    return 0
