"""Headline experiments of the sequential/parallel autoencoders (see docs/seqpar.md).

Run: ``python docs/experiments/seqpar_headline.py`` (4-10 minutes on one
loaded core). Prints the tables and writes ``docs/figures/seqpar_*.png``.
``--quick`` runs a tiny version (seconds) to check the script; ``--ablation``
instead runs the comparison of feedback signals and the continuous bottleneck
(about 5 minutes; prints tables only).

1. Width sweep: for every bottleneck width k, train seeds and tabulate how
   many bits of the input have arrived after each step (exact, by
   enumerating all inputs), the sequential/parallel index and bits per step.
   The same sweep without decoder-to-encoder feedback is the control.
2. Distribution switch: train on uniform inputs, then hold at 0 the k input
   bits the code sent first, keep training, and compare the code before,
   after, and in a control that kept training on uniform inputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from brainres.families import seqpar  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "figures"


def information_figure(table: pd.DataFrame, control: pd.DataFrame, base: seqpar.Config, path: Path) -> None:
    steps = np.arange(1, base.n_steps + 1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    colours = plt.cm.viridis(np.linspace(0, 0.9, table["bottleneck_width"].nunique()))
    for colour, (width, group) in zip(colours, table.groupby("bottleneck_width")):
        curves = group[[f"bits_step_{t}" for t in steps]].to_numpy()
        axes[0].plot(steps, curves.T, color=colour, alpha=0.35, lw=1)
        axes[0].plot(steps, curves.mean(0), color=colour, lw=2, label=f"k={width}")
        axes[0].plot(steps, np.minimum(width * steps, base.input_dim), color=colour, ls=":", lw=1)
    for width, group in control.groupby("bottleneck_width"):
        curves = group[[f"bits_step_{t}" for t in steps]].to_numpy()
        axes[0].plot(steps, curves.mean(0), color="crimson", ls="--", lw=1.5, label=f"k={width}, no feedback")
    axes[0].set(xlabel="step", ylabel="I(X; codes so far) [bits]", title="information over steps (dotted: limit)")
    axes[0].legend(fontsize=7)
    summary = table.groupby("bottleneck_width")["sequential_parallel_index"]
    widths = np.array(sorted(table["bottleneck_width"].unique()))
    for width, group in table.groupby("bottleneck_width"):
        axes[1].scatter(np.full(len(group), width), group["sequential_parallel_index"], color="grey", s=12)
    axes[1].plot(widths, summary.mean().loc[widths], "o-", color="k", label="mean over seeds")
    axes[1].plot(widths, np.minimum(widths, base.input_dim) / base.input_dim, ":", color="k", label="k / D (ideal)")
    axes[1].set(xlabel="bottleneck width k", ylabel="bits at step 1 / final bits", title="sequential/parallel index")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def switch_figure(datasets: dict, table: pd.DataFrame, path: Path) -> None:
    seed = sorted(datasets["before"])[0]
    fig, axes = plt.subplots(1, 4, figsize=(11, 3.0))
    for ax, phase in zip(axes[:3], ("before", "after", "control")):
        info = datasets[phase][seed]["bit_information"].sel(seed=seed).values
        gains = np.diff(info, axis=0, prepend=0)
        image = ax.imshow(gains.T, vmin=0, vmax=1, cmap="magma", aspect="auto",
                          extent=(0.5, gains.shape[0] + 0.5, gains.shape[1] - 0.5, -0.5))
        fixed = table.loc[(table.seed == seed) & (table.phase == phase), "fixed_bits"].iloc[0]
        ax.set(xlabel="step", ylabel="input bit", title=f"{phase} (seed {seed}; fixed {fixed})")
    fig.colorbar(image, ax=axes[2], label="new bits")
    phases = ["before", "after", "control"]
    means = table.groupby("phase")["bits_step_1"].mean().loc[phases]
    axes[3].bar(phases, means, color="lightgrey")
    for i, phase in enumerate(phases):
        values = table.loc[table.phase == phase, "bits_step_1"]
        axes[3].scatter(np.full(len(values), i), values, color="k", s=12)
    axes[3].set(ylabel="bits at step 1 (new distribution)", title="first step")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def ablation(base: seqpar.Config, seeds) -> int:
    """What is fed back (narrow widths), and the continuous bottleneck (decoder bound)."""
    columns = ["bottleneck_width", "seed", "bits_step_1", "bits_step_2", "bits_step_3", "bits_final",
               "sequential_parallel_index"]
    for signal in ("state", "reconstruction"):
        started = time.time()
        config = dataclasses.replace(base, feedback_signal=signal)
        table, summary = seqpar.width_sweep(config, (1, 2), seeds)
        print(f"\n== feedback_signal={signal!r} ({time.time() - started:.0f} s)\n", table[columns].round(3).to_string(index=False))
        print(summary.round(3).to_string(index=False), flush=True)
    started = time.time()
    config = dataclasses.replace(base, bottleneck="continuous", noise_std=0.5)
    table, summary = seqpar.width_sweep(config, (1, 2, 6), seeds)
    print(f"\n== continuous bottleneck, noise_std=0.5, decoder lower bound ({time.time() - started:.0f} s)\n",
          table[columns].round(3).to_string(index=False))
    print(summary.round(3).to_string(index=False), flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    parser.add_argument("--ablation", action="store_true", help="feedback signals and continuous codes instead")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pd.set_option("display.width", 160)
    pd.set_option("display.max_columns", 30)
    if args.quick:
        base = seqpar.Config(input_dim=3, n_steps=3, epochs=20, batch_size=4)
        widths, seeds, switch_epochs = (1, 3), (0, 1), 10
    else:
        base = seqpar.Config(input_dim=6, n_steps=6, epochs=500, batch_size=16, learning_rate=3e-3)
        widths, seeds, switch_epochs = (1, 2, 3, 4, 6), (0, 1, 2), 500
    # The quick check must not overwrite the real figures.
    figures = Path(tempfile.mkdtemp(prefix="seqpar-figures-")) if args.quick else FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    print("base config:", base.to_dict(), flush=True)
    if args.ablation:
        return ablation(base, seeds)

    started = time.time()
    table, summary = seqpar.width_sweep(base, widths, seeds, progress=False)
    print(f"\n== width sweep ({time.time() - started:.0f} s)\n", table.round(3).to_string(index=False))
    print("\n", summary.attrs["interval"], "\n", summary.round(3).to_string(index=False), flush=True)

    started = time.time()
    no_feedback = dataclasses.replace(base, feedback=False)
    control_widths = widths[:2]
    control, control_summary = seqpar.width_sweep(no_feedback, control_widths, seeds)
    print(f"\n== width sweep without feedback ({time.time() - started:.0f} s)\n", control.round(3).to_string(index=False))
    print("\n", control_summary.round(3).to_string(index=False), flush=True)
    information_figure(table, control, base, figures / "seqpar_information.png")

    started = time.time()
    switch_base = dataclasses.replace(base, bottleneck_width=2 if not args.quick else 1)
    switch_table, switch_summary, datasets = seqpar.distribution_switch(
        switch_base, seeds, fixed_bits="first_sent", switch_epochs=switch_epochs
    )
    print(f"\n== distribution switch ({time.time() - started:.0f} s)\n", switch_table.round(3).to_string(index=False))
    print("\n", switch_summary.attrs["interval"], "\n", switch_summary.round(3).to_string(index=False), flush=True)
    switch_figure(datasets, switch_table, figures / "seqpar_switch.png")
    print("\nfigures:", sorted(str(p) for p in figures.glob("seqpar_*.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
