"""``brainres datasets list|info|fetch``."""

from __future__ import annotations

import json
from brainres.commands import HelpFormatter


def register(subparsers) -> None:
    parser = subparsers.add_parser("datasets", formatter_class=HelpFormatter, help="list, describe and fetch registered datasets")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", formatter_class=HelpFormatter, help="every registered dataset").set_defaults(func=list_datasets)
    info = actions.add_parser("info", formatter_class=HelpFormatter, help="subjects, trials, stimuli, RT summary, license, citation")
    info.add_argument("dataset_id")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(func=info_dataset)
    fetch = actions.add_parser("fetch", formatter_class=HelpFormatter, help="download (or find in BRAINRES_DATA) and verify all files")
    fetch.add_argument("dataset_id", nargs="+")
    fetch.set_defaults(func=fetch_datasets)


def list_datasets(args) -> int:
    """Every dataset that can be listed; a plug-in that cannot be loaded is named, and the rest still listed."""
    import sys

    from brainres.data.registry import dataset_ids, get_spec, plugin_problems
    from brainres.errors import BrainresError

    rows, broken = [], []
    for dataset_id in dataset_ids(strict=False):
        try:
            spec = get_spec(dataset_id, strict=False)
        except BrainresError as err:
            rows.append((dataset_id, "?", "(its plug-in cannot be loaded; see below)"))
            broken.append(str(err))
        else:
            rows.append((dataset_id, spec.kind, spec.description))
    width = max([len(i) for i, _, _ in rows] + [2])
    print(f"{'id':<{width}}  {'kind':<13}  description")
    for dataset_id, kind, description in rows:
        print(f"{dataset_id:<{width}}  {kind:<13}  {description}")
    for problem in plugin_problems() + broken:
        print(f"brainres: warning: {problem}", file=sys.stderr)
    return 0


def info_dataset(args) -> int:
    from brainres.data.registry import load_dataset
    from brainres.data.summary import describe

    facts = describe(load_dataset(args.dataset_id, progress=True))
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    for key, value in facts.items():
        if key == "rt_seconds":
            value = (f"mean {value['mean']}, sd {value['sd']}, median {value['median']}, "
                     f"IQR [{value['iqr'][0]}, {value['iqr'][1]}], range [{value['min']}, {value['max']}]")
        elif key == "exclusions":
            value = "; ".join(f"{e['rule']}: {e['n_trials']} trials" for e in value) or "none"
        print(f"{key.replace('_', ' '):>20}: {value}")
    return 0


def fetch_datasets(args) -> int:
    from brainres.data.registry import fetch_dataset

    for dataset_id in args.dataset_id:
        paths = fetch_dataset(dataset_id, progress=True)
        folders = sorted({str(p.parent) for p in paths.values()})
        print(f"{dataset_id}: {len(paths)} files verified (SHA-256) in {', '.join(folders[:3])}"
              + (" ..." if len(folders) > 3 else ""))
    return 0
