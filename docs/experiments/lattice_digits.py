"""Small lattice experiments on sklearn's 8x8 digits (not a test; run by hand).

    BRAINRES_DATA=/work/shared/data /work/venv/bin/python \
        docs/experiments/lattice_digits.py --out /tmp/lattice_runs

Trains (resumably, one run after another) the seeds (default 0 1 2) x 4
settings of lambda_time on the 10-class task, and the same seeds of the base
setting (the second lambda_time) on an easy 2-class task (digits 0 vs 1), then
prints three tables:

1. occlusion: per seed, the mean over held-out stimuli of (steps at 50%
   occlusion - steps unoccluded), with a 95% percentile bootstrap CI over
   stimuli (10,000 resamples), for four model-time readouts;
2. trade-off: accuracy, mean steps, active breadth and effective depth per
   lambda_time (mean over seeds, and per seed);
3. difficulty: breadth, depth and steps on the easy vs the hard task per seed.

The trade-off setting (docs/lattice.md): the readout sees only the top layer's
central pixels, so its receptive field has to come from depth or time:

    ... lattice_digits.py --out runs/C --unrolling sweep --readout center \
        --lambda-breadth 0.5 --lambda-depth 0.2 --lambda-times 0 0.01 0.03 0.1 \
        --match-updates --seeds 0 1 2 3 4 --figure docs/figures/lattice_tradeoff.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import brainres
from brainres.families.lattice import LatticeConfig, LatticeNet
from brainres.models.occlusion import occlude
from brainres.models.readouts import readout_table
from brainres.train import TrainConfig, evaluate, run_config_hash, stimuli_to_tensors, train_model

LAMBDA_TIMES = (0.0, 0.02, 0.05, 0.2)
CLASSES = [str(digit) for digit in range(10)]
BASE = dict(max_channels=16, max_layers=3, max_steps=6, lambda_breadth=0.05, lambda_depth=0.02, lambda_time=0.02)


def config_for(*, seed, n_classes, epochs, base, **changes):
    """The lattice and how it is trained."""
    lattice = LatticeConfig(n_classes=n_classes, **{**base, **changes})
    training = TrainConfig(seed=seed, epochs=epochs, batch_size=32, learning_rate=0.01,
                           occlusion_levels=(0.0, 0.25, 0.5))
    return lattice, training


def train_run(images, labels, *, lattice, training, classes, out):
    """Train (or resume, or just reload) one run in ``out/<hash>``, the folder ``brainres train`` would use.

    The run folder records the lattice family, so ``brainres export`` can export it.
    """
    record = {"family": "lattice", "settings": lattice.to_dict(), "classes": list(classes),
              "in_channels": int(images.shape[1]), "image_size": None, "data": {"ref": "digits", "kind": "registered"}}
    run_dir = out / run_config_hash(record, training)[:16]
    return train_model(lambda: LatticeNet(lattice), images, labels, training, n_classes=lattice.n_classes,
                       record=record, run_dir=run_dir)


def bootstrap_mean_ci(values, *, seed, n_resamples=10_000, level=0.95):
    """Percentile bootstrap CI of the mean, resampling stimuli with replacement."""
    rng = np.random.default_rng(seed)
    values = np.asarray(values, dtype=float)
    means = values[rng.integers(0, values.size, (n_resamples, values.size))].mean(axis=1)
    tail = (1 - level) / 2
    return float(values.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def model_time_table(model, images, stimulus_index, level):
    shown = images if level == 0 else occlude(images, level=level, seed=0, stimulus_index=stimulus_index)
    with torch.no_grad():
        out = model(shown)
    return readout_table(logits=out["logits"], halting_probability=out["halting_probability"],
                         stimulus_id=stimulus_index, entropy_threshold=0.2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lambda-breadth", type=float, default=BASE["lambda_breadth"])
    parser.add_argument("--lambda-depth", type=float, default=BASE["lambda_depth"])
    parser.add_argument("--lambda-times", type=float, nargs="+", default=list(LAMBDA_TIMES),
                        help="settings of the trade-off; the second one is the base setting")
    parser.add_argument("--unrolling", choices=["biological", "sweep"], default="biological")
    parser.add_argument("--readout", choices=["pooled", "center"], default="pooled",
                        help="'center': the readout sees only the top layer's central pixels, so its receptive "
                             "field must come from depth or time (the trade-off setting)")
    parser.add_argument("--figure", type=Path, help="write the trade-off figure (PNG) here")
    parser.add_argument("--match-updates", action="store_true",
                        help="train the easy task for as many gradient updates as the hard one (more epochs)")
    args = parser.parse_args()
    base = {**BASE, "lambda_breadth": args.lambda_breadth, "lambda_depth": args.lambda_depth,
            "lambda_time": args.lambda_times[1], "unrolling": args.unrolling, "readout": args.readout}
    torch.set_num_threads(1)
    images, labels, _ = stimuli_to_tensors(brainres.load_stimuli("digits"))
    easy_images, easy_labels, _ = stimuli_to_tensors(brainres.load_stimuli("digits"), classes=[0, 1])

    results = {}
    for lambda_time in args.lambda_times:
        for seed in args.seeds:
            lattice, training = config_for(seed=seed, n_classes=10, epochs=args.epochs, base=base,
                                            lambda_time=lambda_time)
            results[("hard", lambda_time, seed)] = train_run(images, labels, lattice=lattice, training=training,
                                                             classes=CLASSES, out=args.out)
    easy_epochs = args.epochs
    if args.match_updates:  # the same number of batches as a hard run (same split fraction and batch size)
        easy_epochs = int(round(args.epochs * len(images) / len(easy_images)))
    for seed in args.seeds:
        lattice, training = config_for(seed=seed, n_classes=2, epochs=easy_epochs, base=base)
        results[("easy", base["lambda_time"], seed)] = train_run(easy_images, easy_labels, lattice=lattice,
                                                                 training=training, classes=CLASSES[:2], out=args.out)

    # 1. occlusion effect on the base setting
    rows = []
    for seed in args.seeds:
        result = results[("hard", base["lambda_time"], seed)]
        held = result.held_out_index
        clear = model_time_table(result.model, images[held], held, 0.0)
        occluded = model_time_table(result.model, images[held], held, 0.5)
        for measure in ("expected_halting_step", "median_halting_step", "entropy_threshold_step", "uncertainty_auc"):
            mean, low, high = bootstrap_mean_ci(occluded[measure] - clear[measure], seed=seed)
            rows.append({"seed": seed, "measure": measure, "unoccluded": clear[measure].mean(),
                         "occluded_50": occluded[measure].mean(), "difference": mean, "ci_low": low, "ci_high": high,
                         "n_stimuli": len(held)})
    occlusion = pd.DataFrame(rows)

    # 2. trade-off across lambda_time
    rows = []
    for (task, lambda_time, seed), result in results.items():
        if task != "hard":
            continue
        held = result.held_out_index
        behaviour = evaluate(result.model, images[held], labels[held], stimulus_index=held)
        occluded = evaluate(result.model, images[held], labels[held], stimulus_index=held, occlusion_level=0.5)
        summary = result.model.resource_summary()
        rows.append({"lambda_time": lambda_time, "seed": seed, "accuracy": behaviour["correct"].mean(),
                     "accuracy_occluded_50": occluded["correct"].mean(),
                     "mean_steps": behaviour["expected_halting_step"].mean(),
                     "active_breadth": summary["active_breadth"], "total_channels": sum(summary["active_channels"]),
                     "effective_depth": summary["effective_depth"], "active_channels": summary["active_channels"]})
    tradeoff = pd.DataFrame(rows)

    # 3. difficulty: easy (0 vs 1) vs hard (10 classes), same pressures
    rows = []
    for task, task_images, task_labels in (("easy", easy_images, easy_labels), ("hard", images, labels)):
        for seed in args.seeds:
            result = results[(task, base["lambda_time"], seed)]
            held = result.held_out_index
            behaviour = evaluate(result.model, task_images[held], task_labels[held], stimulus_index=held)
            summary = result.model.resource_summary()
            rows.append({"task": task, "seed": seed, "epochs": result.config.epochs,
                         "accuracy": behaviour["correct"].mean(),
                         "mean_steps": behaviour["expected_halting_step"].mean(),
                         "active_breadth": summary["active_breadth"], "total_channels": sum(summary["active_channels"]),
                         "effective_depth": summary["effective_depth"],
                         "active_channels": summary["active_channels"]})
    difficulty = pd.DataFrame(rows)

    pd.set_option("display.width", 200)
    pd.set_option("display.precision", 3)
    print("== 1. steps at 50% occlusion minus unoccluded (held-out stimuli, 95% bootstrap CI)")
    print(occlusion.to_string(index=False))
    print("\n== 2. trade-off across lambda_time (per seed)")
    print(tradeoff.to_string(index=False))
    print("\n== 2b. mean over seeds")
    print(tradeoff.drop(columns=["seed", "active_channels"]).groupby("lambda_time").mean().to_string())
    print("\n== 2c. highest minus lowest lambda_time, per seed, with a 95% t-interval over seeds")
    print(tradeoff_change(tradeoff).to_string(index=False))
    print("\n== 3. easy (0 vs 1) vs hard (10 classes)")
    print(difficulty.to_string(index=False))
    for name, table in (("occlusion", occlusion), ("tradeoff", tradeoff), ("difficulty", difficulty)):
        table.to_csv(args.out / f"{name}.csv", index=False)
    if args.figure:
        plot_tradeoff(tradeoff, args.figure)


def tradeoff_change(tradeoff):
    """Per-seed change from the lowest to the highest lambda_time, and its mean with a t-interval over seeds."""
    from scipy import stats

    ends = tradeoff.sort_values("lambda_time").groupby("seed")
    rows = []
    for measure in ("mean_steps", "total_channels", "effective_depth", "accuracy"):
        change = (ends[measure].last() - ends[measure].first()).to_numpy(dtype=float)
        mean, sem = change.mean(), stats.sem(change)
        low, high = stats.t.interval(0.95, change.size - 1, loc=mean, scale=sem)
        rows.append({"measure": measure, "per_seed": np.round(change, 3).tolist(), "mean": mean,
                     "ci_low": low, "ci_high": high, "n_seeds": change.size})
    return pd.DataFrame(rows)


def plot_tradeoff(tradeoff, path):
    """Steps, active channels, effective depth and accuracy against lambda_time, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("mean_steps", "mean halting step"), ("total_channels", "active channels (all layers)"),
              ("effective_depth", "effective depth"), ("accuracy", "held-out accuracy"))
    settings = sorted(tradeoff["lambda_time"].unique())
    positions = {value: index for index, value in enumerate(settings)}
    figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0), constrained_layout=True)
    for axis, (column, label) in zip(axes, panels):
        for seed, rows in tradeoff.groupby("seed"):
            rows = rows.sort_values("lambda_time")
            axis.plot([positions[v] for v in rows["lambda_time"]], rows[column], marker="o", alpha=0.6,
                      label=f"seed {seed}")
        means = tradeoff.groupby("lambda_time")[column].mean()
        axis.plot([positions[v] for v in means.index], means.values, color="black", linewidth=2.5, label="mean")
        axis.set_xticks(range(len(settings)), [f"{v:g}" for v in settings])
        axis.set_xlabel("lambda_time")
        axis.set_title(label)
    axes[0].legend(frameon=False, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=130)
    plt.close(figure)


if __name__ == "__main__":
    main()
