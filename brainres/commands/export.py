"""``brainres export``: run trained lattice seeds on a stimulus set and write a model-measures file."""

from __future__ import annotations

import json
from pathlib import Path

from brainres.errors import BrainresError


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export what trained models do on a stimulus set (netCDF)")
    parser.add_argument("runs", nargs="+", help="training run folders (one per seed, same configuration)")
    parser.add_argument("--stimuli", required=True, help="stimuli dataset id (brainres datasets list)")
    parser.add_argument("--out", required=True, help="output .nc file (written atomically)")
    parser.add_argument("--occlusion", type=float, nargs="+", default=[0.0, 0.25, 0.5])
    parser.add_argument("--occlusion-seed", type=int, default=0)
    parser.add_argument("--latents", action="store_true", help="also export pooled latent states per step")
    parser.add_argument("--unscored", action="store_true",
                        help="allow stimuli of classes the models never learned (target_class -1)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)


def run_data(run_dir: Path) -> dict:
    """What a run was trained on: ``data.json`` written at training time."""
    path = run_dir / "data.json"
    if not path.exists():
        raise BrainresError(f"{path} is missing: the run folder does not record its classes (train with a current "
                            "brainres, or write data.json with 'data', 'classes' and 'image_size')")
    return json.loads(path.read_text())


def run(args) -> int:
    from brainres.data.registry import load_stimuli
    from brainres.export import export_lattice
    from brainres.train import load_trained

    runs = [Path(r) for r in args.runs]
    records = [run_data(r) for r in runs]
    if any(r != records[0] for r in records):
        raise BrainresError("the run folders were trained on different data, classes or image sizes")
    models = {}
    for run_dir in runs:
        config = json.loads((run_dir / "config.json").read_text())["config"]
        if config["seed"] in models:
            raise BrainresError(f"two run folders have seed {config['seed']}")
        models[config["seed"]] = load_trained(run_dir)
    path = export_lattice(
        models, load_stimuli(args.stimuli), args.out, classes=records[0]["classes"],
        training_data=records[0]["data"], image_size=records[0].get("image_size"),
        occlusion_levels=args.occlusion, occlusion_seed=args.occlusion_seed, latents=args.latents,
        unknown_classes="unscored" if args.unscored else "error", batch_size=args.batch_size,
        progress=not args.quiet,
    )
    print(f"wrote {path}: {len(models)} seeds x {args.stimuli} x occlusion {args.occlusion}")
    return 0
