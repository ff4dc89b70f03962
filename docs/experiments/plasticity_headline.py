"""Headline experiments of the grow / prune plasticity family (CPU, one thread).

Run from the repository root:

    python docs/experiments/plasticity_headline.py            # full run (~10-15 min on one core)
    python docs/experiments/plasticity_headline.py --quick    # 2 seeds, 4 epochs: a smoke test
    python docs/experiments/plasticity_headline.py --sections width_control   # one part only

Prints the tables, writes them as CSV next to the figures and saves
``docs/figures/plasticity_ratio.png`` and ``docs/figures/plasticity_grow_prune.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import brainres  # noqa: E402
from brainres.families import plasticity  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "figures"
SECTIONS = ["ratio", "learning_rate", "width_control", "grow_prune"]


def _print(title, table):
    print(f"\n== {title}")
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(table.to_string(index=False))


def ratio_figure(trajectory: pd.DataFrame, path: Path, insertion: str = "random") -> None:
    """Mean newborn/incumbent ratio over seeds (thin lines: seeds) per trunk."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=100)
    rows = trajectory[trajectory["insertion"] == insertion]
    for trunk, color in (("mlp", "tab:blue"), ("conv", "tab:red")):
        part = rows[rows["trunk"] == trunk]
        for _, seed_rows in part.groupby("seed"):
            ax.plot(seed_rows["steps_since_insertion"], seed_rows["gradient_ratio"], color=color, alpha=0.12, lw=0.6)
        mean = part.groupby("steps_since_insertion")["gradient_ratio"].mean()
        ax.plot(mean.index, mean.to_numpy(), color=color, lw=2, label=f"{trunk} (mean over seeds)")
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_yscale("log")  # the insertion-time gap (ratios of 0.03-0.15) is invisible on a linear axis
    ax.set_xlabel("training steps since insertion")
    ax.set_ylabel("newborn / incumbent\nincoming-gradient norm")
    ax.set_title(f"Gradient ratio after inserting 8 units ({insertion} init)", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def grow_prune_figure(summary: pd.DataFrame, path: Path) -> None:
    """Final, trajectory-averaged and retrained accuracy per schedule and trunk, with intervals."""
    measures = ["final_accuracy", "trajectory_accuracy", "retrained_accuracy"]
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.2), dpi=100, sharey=True)
    for ax, trunk in zip(axes, ("mlp", "conv")):
        part = summary[(summary["trunk"] == trunk) & summary["measure"].isin(measures)
                       & ~summary["schedule"].str.contains(" - ")]
        schedules = list(dict.fromkeys(part["schedule"]))
        for offset, measure in enumerate(measures):
            rows = part[part["measure"] == measure].set_index("schedule").loc[schedules]
            x = [i + (offset - 1) * 0.25 for i in range(len(schedules))]
            err = [rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]]
            ax.errorbar(x, rows["mean"], yerr=err, fmt="o", ms=4, capsize=2, label=measure.replace("_", " "))
        ax.set_xticks(range(len(schedules)), schedules)
        ax.set_title(trunk)
    axes[0].set_ylabel("held-out accuracy (95% CI over seeds)")
    axes[1].legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, short training: a smoke test")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sections", nargs="+", default=SECTIONS, choices=SECTIONS,
                        help="which experiments to run (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    FIGURES.mkdir(parents=True, exist_ok=True)
    stimuli = brainres.load_stimuli("digits")
    seeds = range(2 if args.quick else args.seeds)
    quick = dict(epochs=4, first_change_step=40, ratio_window=40) if args.quick else {}
    prefix = "plasticity_quick_" if args.quick else "plasticity_"

    if "ratio" in args.sections:
        ratio_section(seeds, stimuli, quick, prefix)
    if "learning_rate" in args.sections:
        learning_rate_section(seeds, stimuli, quick, prefix)
    if "width_control" in args.sections:
        width_control_section(seeds, stimuli, quick, prefix)
    if "grow_prune" in args.sections:
        grow_prune_section(seeds, stimuli, args.quick, prefix)


def ratio_section(seeds, stimuli, quick, prefix):
    start = time.perf_counter()
    per_seed, trajectory, summary = plasticity.insertion_gradient_ratio(
        trunks=("mlp", "conv"), insertions=("random", "zero", "split", "gradmax"), seeds=seeds,
        stimuli=stimuli, **quick,
    )
    print(f"[insertion_gradient_ratio: {time.perf_counter() - start:.0f} s]")
    _print("Gradient ratio per seed", per_seed)
    _print("Gradient ratio: mean over seeds, 95% percentile bootstrap CI (seeds resampled)", summary)
    per_seed.to_csv(FIGURES / f"{prefix}ratio_per_seed.csv", index=False)
    summary.to_csv(FIGURES / f"{prefix}ratio_summary.csv", index=False)
    ratio_figure(trajectory, FIGURES / f"{prefix}ratio.png")


def learning_rate_section(seeds, stimuli, quick, prefix):
    start = time.perf_counter()
    lr_per_seed, _, lr_summary = plasticity.insertion_gradient_ratio(
        trunks=("mlp", "conv"), insertions=("random",), seeds=seeds, stimuli=stimuli, learning_rate=1e-2,
        **quick,
    )
    print(f"[insertion_gradient_ratio at learning_rate=1e-2: {time.perf_counter() - start:.0f} s]")
    _print("Robustness: gradient ratio at learning_rate=1e-2 (random insertion)", lr_summary)
    lr_summary.to_csv(FIGURES / f"{prefix}ratio_summary_lr1e-2.csv", index=False)


def width_control_section(seeds, stimuli, quick, prefix):
    # The conv trunk has 16 channels and the MLP 32 neurons, so 8 newborns are 50% vs 25% of the
    # layer; this control gives the MLP the conv trunk's widths (16, 16).
    start = time.perf_counter()
    _, _, summary = plasticity.insertion_gradient_ratio(
        trunks=("mlp",), insertions=("random",), seeds=seeds, stimuli=stimuli, widths=(16, 16), **quick,
    )
    print(f"[width control, MLP widths (16, 16): {time.perf_counter() - start:.0f} s]")
    _print("Width control: MLP with widths (16, 16), random insertion of 8 units", summary)
    summary.to_csv(FIGURES / f"{prefix}ratio_summary_mlp16.csv", index=False)


def grow_prune_section(seeds, stimuli, is_quick, prefix):
    start = time.perf_counter()
    grow_seed, grow_summary = plasticity.grow_vs_prune(
        trunks=("mlp", "conv"), seeds=seeds, stimuli=stimuli,
        **(dict(epochs=4, first_change_step=10, change_interval=10) if is_quick else {}),
    )
    print(f"[grow_vs_prune: {time.perf_counter() - start:.0f} s]")
    _print("Grow vs prune per seed", grow_seed)
    _print("Grow vs prune: mean over seeds, 95% percentile bootstrap CI (seeds resampled)", grow_summary)
    grow_seed.to_csv(FIGURES / f"{prefix}grow_prune_per_seed.csv", index=False)
    grow_summary.to_csv(FIGURES / f"{prefix}grow_prune_summary.csv", index=False)
    grow_prune_figure(grow_summary, FIGURES / f"{prefix}grow_prune.png")


if __name__ == "__main__":
    main()
