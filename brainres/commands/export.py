"""``brainres export``: run trained seeds of any image model on a stimulus set and write a model-measures file."""

from __future__ import annotations

import argparse
from pathlib import Path

from brainres.errors import BrainresError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export what trained models do on a stimulus set (netCDF)",
        description="Run trained seeds of one model (any family) on a stimulus set and write a model_measures file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("runs", nargs="+", help="training run folders (one per seed, same configuration)")
    parser.add_argument("--stimuli", required=True, help="stimuli: a registered dataset id or a folder of images")
    parser.add_argument("--out", required=True, help="output .nc file (written atomically)")
    parser.add_argument("--occlusion", type=float, nargs="+", default=[0.0], help="occluded fractions")
    parser.add_argument("--occlusion-seed", type=int, default=0, help="seed of the occluder masks")
    parser.add_argument("--entropy-threshold", type=float, default=0.5,
                        help="normalised entropy of the entropy-threshold readout")
    parser.add_argument("--latents", action="store_true", help="also export latent states per step")
    parser.add_argument("--unscored", action="store_true",
                        help="allow stimuli of classes the models never learned (target_class -1)")
    parser.add_argument("--batch-size", type=int, default=128, help="stimuli per chunk")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=run)


def run(args) -> int:
    from brainres.data.registry import dataset_ids, load_stimuli
    from brainres.export import export_models
    from brainres.families import get_family
    from brainres.train import load_trained, read_run_config

    trained = [load_trained(Path(r), device=args.device) for r in args.runs]
    records = [t.record for t in trained]
    if any({k: v for k, v in r.items() if k != "data"} != {k: v for k, v in records[0].items() if k != "data"}
           for r in records):
        raise BrainresError("the run folders hold different models (family, settings, classes or image size); "
                            "export each model on its own")
    seeds = [t.seed for t in trained]
    if len(set(seeds)) != len(seeds):
        raise BrainresError(f"two run folders have the same seed ({seeds})")
    if args.stimuli in dataset_ids():
        stimuli = load_stimuli(args.stimuli)
    else:
        from brainres.data.folders import read_stimuli

        stimuli = read_stimuli(args.stimuli)
    record = records[0]
    stored = read_run_config(trained[0].run_dir)
    weights = stored.get("weights")
    path = export_models(
        {t.seed: t.model for t in trained}, stimuli, args.out, classes=record["classes"],
        in_channels=record["in_channels"], image_size=record["image_size"],
        record={**record, "training": None if weights else {k: v for k, v in stored["training"].items() if k != "seed"},
                "weights": "trained elsewhere, loaded from checkpoints" if weights else None},
        training_data=f"weights from {weights['file']}" if weights else record.get("data", {}).get("ref", ""),
        pressures=get_family(record["family"]).pressures(record), occlusion_levels=args.occlusion,
        occlusion_seed=args.occlusion_seed, entropy_threshold=args.entropy_threshold, latents=args.latents,
        unknown_classes="unscored" if args.unscored else "error", batch_size=args.batch_size, device=args.device,
        progress=not args.quiet,
    )
    print(f"wrote {path}: seeds {sorted(seeds)} x {args.stimuli} x occlusion {args.occlusion}")
    return 0
