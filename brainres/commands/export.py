"""``brainres export RUN...``: what trained seeds of one model do, as a model-measures netCDF file.

Image-model runs (lattice, a user's module) are run on a stimulus set
(``--stimuli``, with occlusion levels and latents as asked); runs of a task
family (ELM, plasticity, seqpar) are measured on their own task.
"""

from __future__ import annotations

import json
from pathlib import Path

from brainres.errors import BrainresError
from brainres.commands import HelpFormatter


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export what trained seeds of one model do (model-measures netCDF)",
        description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders of one model (one per seed), from brainres train or a "
                                                "pipeline's models/ folder")
    parser.add_argument("--out", required=True, help="output .nc file (written atomically)")
    images = parser.add_argument_group("image models (lattice, torch)")
    images.add_argument("--stimuli", help="a registered stimulus set or a folder of images; required for image models")
    images.add_argument("--occlusion", type=float, nargs="+", default=[0.0], help="occluded fractions")
    images.add_argument("--occlusion-seed", type=int, default=0, help="seed of the occluder masks")
    images.add_argument("--entropy-threshold", type=float, default=0.5,
                        help="normalised entropy of the entropy-threshold readout")
    images.add_argument("--latents", action="store_true", help="also export latent states per step")
    images.add_argument("--unscored", action="store_true",
                        help="allow stimuli of classes the models never learned (target_class -1)")
    images.add_argument("--batch-size", type=int, default=128, help="stimuli per chunk")
    images.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=run)


def run(args) -> int:
    from brainres.runs import read_run_config

    stored = [read_run_config(Path(r)) for r in args.runs]
    if all("config" in s and "family" in s for s in stored):
        return _export_task_family(args, stored)
    if any("config" in s and "family" in s for s in stored):
        raise BrainresError("the run folders mix models of a task family and image models; export each on its own")
    return _export_image_models(args)


def _export_task_family(args, stored: list[dict]) -> int:
    from brainres.data.io import write_netcdf
    from brainres.families import get_family

    families = {s["family"] for s in stored}
    configs = [json.dumps(s["config"], sort_keys=True) for s in stored]
    if len(families) > 1 or len(set(configs)) > 1:
        raise BrainresError("the run folders hold different families or configurations; export each on its own")
    family = get_family(families.pop())
    config = family.config.from_dict(stored[0]["config"])
    runs = [family.load(config, Path(r)) for r in args.runs]
    seeds = [r.seed for r in runs]
    if len(set(seeds)) != len(seeds):
        raise BrainresError(f"two run folders have the same seed ({seeds})")
    path = write_netcdf(family.measure(config, runs), args.out, validate_kind="model_measures")
    print(f"wrote {path}: {family.id}, seeds {sorted(seeds)}")
    return 0


def _export_image_models(args) -> int:
    from brainres.data.registry import dataset_ids, load_stimuli
    from brainres.export import export_models
    from brainres.families import get_family
    from brainres.train import load_trained, read_run_config

    if not args.stimuli:
        raise BrainresError("image models are exported on a stimulus set: give --stimuli")
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
