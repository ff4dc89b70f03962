"""``brainres family``: train and measure the ELM, plasticity or sequential/parallel families.

Each family module (``brainres.families.<name>``) offers the same entry points:
``Config``, ``train(config, seed)`` and ``measure(config, seeds)``, which
returns a validated ``model_measures`` dataset. This command sets a
configuration from a TOML file and/or ``--set key=value`` pairs, trains every
seed and writes the measures atomically::

    brainres family elm --set n_neurons=16 --set k_c=8 --seeds 0 1 2 --out elm.nc
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import tomllib
from pathlib import Path

from brainres.errors import BrainresError

FAMILIES = ("elm", "plasticity", "seqpar")


def register(subparsers) -> None:
    parser = subparsers.add_parser("family", help="train and measure an ELM, plasticity or seqpar model family")
    parser.add_argument("family", choices=FAMILIES)
    parser.add_argument("--config", help="TOML file of Config fields")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a Config field (VALUE read as JSON when it parses, else as text); repeatable")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", required=True, help="output model-measures .nc file")
    parser.add_argument("--show-config", action="store_true", help="print the configuration's fields and exit")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_config(family: str, config_file: str | None, pairs: list[str]):
    """The family's ``Config`` from a TOML file and KEY=VALUE overrides; unknown keys are errors."""
    module = importlib.import_module(f"brainres.families.{family}")
    values = tomllib.loads(Path(config_file).read_text()) if config_file else {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise BrainresError(f"--set expects KEY=VALUE, got {pair!r}")
        values[key.strip()] = _value(text.strip())
    known = {f.name for f in dataclasses.fields(module.Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise BrainresError(f"unknown {family} Config field(s) {unknown}; fields: {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return module, module.Config(**values)


def run(args) -> int:
    from brainres.data.io import write_netcdf

    module, config = build_config(args.family, args.config, args.set)
    if args.show_config:
        print(json.dumps(config.to_dict(), indent=2, default=str))
        return 0
    measures = module.measure(config, args.seeds, progress=not args.quiet)
    path = write_netcdf(measures, args.out, validate_kind="model_measures")
    print(f"wrote {path}: {args.family}, seeds {args.seeds}, config {config.config_hash()[:12]}")
    return 0
