"""``brainres train``: train lattice models over seeds x pressure settings, one after another.

Example::

    brainres train --dataset digits --seeds 0 1 2 --lambda-time 0 0.01 0.05 \\
        --epochs 20 --out runs/digits

Every (lambda_breadth, lambda_depth, lambda_time, seed) combination trains in
``<out>/<config-hash>/``. Rerunning the same command after an interruption
resumes the unfinished run and skips finished ones. Defaults are the declared
defaults of ``LatticeConfig`` and ``TrainConfig`` (the same as in pipelines).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from brainres.settings import default_of


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to an argparse ``subparsers`` object."""
    from brainres.families.lattice import LatticeConfig
    from brainres.train import TrainConfig

    def lattice(name):
        return default_of(LatticeConfig, name)

    def training(name):
        return default_of(TrainConfig, name)

    parser = subparsers.add_parser(
        "train", help="train breadth-depth-time lattice models (resumable)",
        description="Train breadth-depth-time lattice models over seeds x pressure settings (resumable).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="digits", help="stimuli dataset id with labels")
    data.add_argument("--classes", type=int, nargs="+", default=None,
                      help="keep only these labels (renumbered 0..k-1), e.g. --classes 0 1 for an easy task")
    data.add_argument("--held-out-fraction", type=float, default=training("held_out_fraction"),
                      help="fraction of the images held out for the per-epoch log")
    data.add_argument("--split-seed", type=int, default=training("split_seed"), help="seed of the held-out split")
    model = parser.add_argument_group("lattice bounds and pressures")
    model.add_argument("--max-channels", type=int, default=lattice("max_channels"), help="channels per layer")
    model.add_argument("--max-layers", type=int, default=lattice("max_layers"), help="gated recurrent layers")
    model.add_argument("--max-steps", type=int, default=lattice("max_steps"), help="recurrent steps")
    model.add_argument("--top-down", action="store_true", help="add top-down connections")
    for name in ("lambda_breadth", "lambda_depth", "lambda_time"):
        model.add_argument(f"--{name.replace('_', '-')}", type=float, nargs="+", default=[lattice(name)],
                           help=f"{name} value(s); several make a grid")
    model.add_argument("--beta-kl", type=float, default=lattice("beta_kl"), help="weight of the halting KL term")
    run = parser.add_argument_group("training")
    run.add_argument("--seeds", type=int, nargs="+", default=[training("seed")], help="training seeds")
    run.add_argument("--epochs", type=int, default=training("epochs"), help="passes over the training split")
    run.add_argument("--batch-size", type=int, default=training("batch_size"), help="images per step")
    run.add_argument("--learning-rate", type=float, default=training("learning_rate"), help="Adam learning rate")
    run.add_argument("--occlusion-levels", type=float, nargs="+", default=list(training("occlusion_levels")),
                     help="occluded fractions drawn per training image and epoch (0.0 alone: no augmentation)")
    run.add_argument("--threads", type=int, default=training("num_threads"), help="torch threads")
    run.add_argument("--device", default=training("device"), help="cpu, cuda, cuda:N or mps")
    run.add_argument("--out", required=True, help="root folder of the run folders")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=run_train)
    return parser


def run_train(args) -> int:
    """Handler of ``brainres train``; returns the process exit code."""
    import pandas as pd

    from brainres.data.registry import load_stimuli
    from brainres.families import get_family
    from brainres.settings import SettingsError
    from brainres.train import TrainConfig, run_config_hash, stimuli_to_tensors, train_model

    stimuli = load_stimuli(args.dataset)
    images, labels, _ = stimuli_to_tensors(stimuli, classes=args.classes)
    names = [str(c) for c in stimuli["label"].attrs.get("classes", sorted(set(stimuli["category"].values.astype(str))))]
    classes = [names[c] for c in args.classes] if args.classes else names
    family = get_family("lattice")
    rows = []
    grid = itertools.product(args.lambda_breadth, args.lambda_depth, args.lambda_time, args.seeds)
    for lambda_breadth, lambda_depth, lambda_time, seed in grid:
        try:
            settings, location = family.settings(
                {"max_channels": args.max_channels, "max_layers": args.max_layers, "max_steps": args.max_steps,
                 "top_down": args.top_down, "lambda_breadth": lambda_breadth, "lambda_depth": lambda_depth,
                 "lambda_time": lambda_time, "beta_kl": args.beta_kl},
                in_channels=int(images.shape[1]), n_classes=len(classes))
            config = TrainConfig(seed=seed, epochs=args.epochs, batch_size=args.batch_size,
                                 learning_rate=args.learning_rate, held_out_fraction=args.held_out_fraction,
                                 split_seed=args.split_seed, occlusion_levels=tuple(args.occlusion_levels),
                                 num_threads=args.threads, device=args.device)
        except SettingsError as err:
            raise SettingsError(err.problems, "command-line options") from None
        record = {"family": "lattice", "settings": settings, "classes": classes, "in_channels": int(images.shape[1]),
                  "image_size": None, "data": {"ref": args.dataset, "kind": "registered"}}
        run_dir = Path(args.out) / run_config_hash(record, config)[:16]
        result = train_model(lambda: family.build(record, seed=seed, location=location), images, labels, config,
                             n_classes=len(classes), record=record, location=location, run_dir=run_dir,
                             progress=not args.quiet, label=f"{run_dir.name} seed {seed}")
        last = result.log.iloc[-1].to_dict() if len(result.log) else {}
        rows.append({"run": run_dir.name, "seed": seed, "lambda_breadth": lambda_breadth, "lambda_depth": lambda_depth,
                     "lambda_time": lambda_time, **last})
    summary = pd.DataFrame(rows)
    columns = [c for c in ("run", "seed", "lambda_breadth", "lambda_depth", "lambda_time", "held_out_accuracy",
                           "held_out_mean_steps", "active_breadth", "effective_depth") if c in summary]
    print(summary[columns].to_string(index=False), file=sys.stdout)
    return 0
