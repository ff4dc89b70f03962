"""``brainres train``: train lattice models over seeds x pressure settings, one after another.

Example::

    brainres train --dataset digits --seeds 0 1 2 --lambda-time 0 0.01 0.05 \\
        --epochs 20 --out runs/digits

Every (seed, lambda_breadth, lambda_depth, lambda_time) combination trains in
``<out>/<config-hash>/``. Rerunning the same command after an interruption
resumes the unfinished run and skips finished ones.
"""

from __future__ import annotations

import argparse
import itertools
import sys

from brainres.errors import BrainresError


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "train",
        help="train breadth-depth-time lattice models (resumable)",
        description=__doc__.split("\n\n")[0],
    )
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="digits", help="stimuli dataset id with labels (default: digits)")
    data.add_argument("--classes", type=int, nargs="+", default=None,
                      help="keep only these labels (renumbered 0..k-1), e.g. --classes 0 1 for an easy task")
    data.add_argument("--held-out-fraction", type=float, default=0.2)
    data.add_argument("--split-seed", type=int, default=0)
    model = parser.add_argument_group("lattice bounds and pressures")
    model.add_argument("--max-channels", type=int, default=16)
    model.add_argument("--max-layers", type=int, default=3)
    model.add_argument("--max-steps", type=int, default=6)
    model.add_argument("--top-down", action="store_true")
    model.add_argument("--lambda-breadth", type=float, nargs="+", default=[0.0])
    model.add_argument("--lambda-depth", type=float, nargs="+", default=[0.0])
    model.add_argument("--lambda-time", type=float, nargs="+", default=[0.0])
    model.add_argument("--beta-kl", type=float, default=0.01)
    run = parser.add_argument_group("training")
    run.add_argument("--seeds", type=int, nargs="+", default=[0])
    run.add_argument("--epochs", type=int, default=20)
    run.add_argument("--batch-size", type=int, default=64)
    run.add_argument("--learning-rate", type=float, default=3e-3)
    run.add_argument("--occlusion-levels", type=float, nargs="+", default=[0.0, 0.25, 0.5])
    run.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    run.add_argument("--out", required=True, help="root folder of the run folders")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_train)
    return parser


def build_configs(args):
    """One TrainConfig per (seed, lambda_breadth, lambda_depth, lambda_time), in that nesting order."""
    from brainres.models.lattice import LatticeConfig
    from brainres.train import TrainConfig

    configs = []
    grid = itertools.product(args.lambda_breadth, args.lambda_depth, args.lambda_time, args.seeds)
    for lambda_breadth, lambda_depth, lambda_time, seed in grid:
        model = LatticeConfig(
            in_channels=args.in_channels, n_classes=args.n_classes, max_channels=args.max_channels,
            max_layers=args.max_layers, max_steps=args.max_steps, top_down=args.top_down,
            lambda_breadth=lambda_breadth, lambda_depth=lambda_depth, lambda_time=lambda_time, beta_kl=args.beta_kl,
        )
        configs.append(TrainConfig(
            model=model, seed=seed, epochs=args.epochs, batch_size=args.batch_size,
            learning_rate=args.learning_rate, held_out_fraction=args.held_out_fraction,
            split_seed=args.split_seed, occlusion_levels=tuple(args.occlusion_levels), num_threads=args.threads,
        ))
    return configs


def run_train(args) -> int:
    """Handler of ``brainres train``; returns the process exit code."""
    import brainres
    from brainres.train import stimuli_to_tensors, train_many

    load_stimuli = getattr(brainres, "load_stimuli", None)
    if load_stimuli is None:
        raise BrainresError("brainres.load_stimuli is not available in this installation")
    stimuli = load_stimuli(args.dataset)
    images, labels, _ = stimuli_to_tensors(stimuli, classes=args.classes)
    args.in_channels = int(images.shape[1])
    args.n_classes = len(args.classes) if args.classes else int(labels.max()) + 1
    configs = build_configs(args)
    summary = train_many(images, labels, configs, root_dir=args.out, progress=not args.quiet)
    _record_data(args, stimuli, configs)
    columns = [c for c in ("run", "seed", "lambda_breadth", "lambda_depth", "lambda_time", "held_out_accuracy",
                           "held_out_mean_steps", "active_breadth", "effective_depth") if c in summary]
    print(summary[columns].to_string(index=False), file=sys.stdout)
    return 0


def _record_data(args, stimuli, configs) -> None:
    """Write ``data.json`` (dataset, class names in output order) into every run folder, for ``brainres export``."""
    import json
    from pathlib import Path

    from brainres.data.io import atomic_write_text
    from brainres.train import run_name

    names = [str(c) for c in stimuli["label"].attrs.get("classes", sorted(set(stimuli["category"].values.astype(str))))]
    classes = [names[c] for c in args.classes] if args.classes else names
    record = {"data": args.dataset, "classes": classes, "image_size": None}
    for config in configs:
        atomic_write_text(Path(args.out) / run_name(config) / "data.json", json.dumps(record, indent=2))
