"""``brainres validate FILE``: check a netCDF file against the data model."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("validate", help="check a netCDF file against the brainres data model")
    parser.add_argument("path")
    parser.add_argument("--kind", help="data-model kind (default: the file's brainres_kind attribute)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from brainres.data.io import read_netcdf

    ds = read_netcdf(args.path, validate_kind=args.kind)
    print(f"{args.path}: valid {args.kind or ds.attrs.get('brainres_kind')} dataset, dims {dict(ds.sizes)}")
    return 0
