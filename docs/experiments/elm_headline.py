"""ELM headline experiments: performance along each knob, and one budget spent many ways.

Run from the repository root:

    python docs/experiments/elm_headline.py            # the reported run (~8 min CPU, one thread)
    python docs/experiments/elm_headline.py --quick    # a 1-minute smoke run (2 seeds, 2 epochs)
    python docs/experiments/elm_headline.py --long     # extremes and middle of both budget lines,
                                                       # trained 3x longer (45 epochs, 3 seeds; ~3 min CPU)

Prints the tidy tables and saves ``docs/figures/elm_axes.png``,
``docs/figures/elm_budget.png`` and ``docs/figures/elm_budget_kc.png``. Every interval is over training seeds (see
``docs/elm.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from brainres.families import elm  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "figures"

BASE = elm.Config(task="onehot-adding", delay=4, n_train=2048, n_test=512, epochs=15, batch_size=64,
                  learning_rate=5e-3, n_neurons=8, k_e=2, k_c=4)
AXES = {"n_neurons": (2, 4, 8, 16), "k_e": (1, 2, 4, 8), "k_c": (1, 2, 4, 8)}
# Line 1: neurons against memories per neuron (k_c fixed at 8), from 1 neuron to 64 one-memory neurons.
BUDGET = 3850
BUDGET_N_VALUES = (1, 2, 4, 8, 16, 32, 64)
BUDGET_K_C = 8
# Line 2: neurons against synapses per neuron (k_e fixed at 2), from 8 nearly fully connected
# neurons to 24 neurons with one synapse each.
BUDGET_2 = 1200
BUDGET_2_N_VALUES = (4, 6, 8, 10, 12, 16, 20, 24, 28)
BUDGET_2_K_E = 2
SEEDS = (0, 1, 2, 3, 4)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2 epochs: checks the script runs")
    parser.add_argument("--long", action="store_true",
                        help="only the budget lines' extremes and middle, trained for 45 epochs (3 seeds)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.long:
        return long_training_check()
    base, seeds = BASE, SEEDS
    if args.quick:
        base, seeds = dataclasses.replace(BASE, epochs=2, n_train=512), (0, 1)
    pd.set_option("display.width", 200, "display.max_columns", 30, "display.precision", 3)
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    cache: dict = {}

    axis_runs, axis_summaries = [], []
    for axis, values in AXES.items():
        runs, summary = elm.axis_sweep(base, axis=axis, values=values, seeds=seeds, cache=cache)
        axis_runs.append(runs)
        axis_summaries.append(summary)
    axis_summary = pd.concat(axis_summaries, ignore_index=True)
    print("\n== Performance along each knob alone (base N=8, k_e=2, k_c=4; task onehot-adding, delay 4) ==")
    print(axis_summary[["axis", "value", "parameter_count", "n_seeds", "mean", "ci_low", "ci_high",
                        "diff_vs_smallest", "diff_ci_low", "diff_ci_high", "diff_t_ci_low", "diff_t_ci_high"]]
          .to_string(index=False))

    budget_runs, budget_summary = elm.budget_sweep(BUDGET, base=dataclasses.replace(base, k_c=BUDGET_K_C),
                                                   n_values=BUDGET_N_VALUES, seeds=seeds, cache=cache)
    print(f"\n== One budget (P ~ {BUDGET}, k_c = {BUDGET_K_C}) spent on N neurons x k_e memories ==")
    print(budget_summary[["role", "n_neurons", "k_e", "k_c", "parameter_count", "mean", "ci_low", "ci_high",
                          "diff_vs_fewest", "diff_vs_fewest_ci_low", "diff_vs_fewest_ci_high",
                          "diff_vs_most", "diff_vs_most_ci_low", "diff_vs_most_ci_high",
                          "diff_vs_most_t_ci_low", "diff_vs_most_t_ci_high"]].to_string(index=False))
    print_per_neuron(budget_runs)

    budget_2_runs, budget_2_summary = elm.budget_sweep(
        BUDGET_2, base=dataclasses.replace(base, k_e=BUDGET_2_K_E), n_values=BUDGET_2_N_VALUES, seeds=seeds,
        cache=cache, fill="k_c")
    print(f"\n== One budget (P ~ {BUDGET_2}, k_e = {BUDGET_2_K_E}) spent on N neurons x k_c synapses ==")
    print(budget_2_summary[["role", "n_neurons", "k_e", "k_c", "parameter_count", "mean", "ci_low", "ci_high",
                            "diff_vs_fewest", "diff_vs_fewest_ci_low", "diff_vs_fewest_ci_high",
                            "diff_vs_fewest_t_ci_low", "diff_vs_fewest_t_ci_high",
                            "diff_vs_most", "diff_vs_most_ci_low", "diff_vs_most_ci_high",
                            "diff_vs_most_t_ci_low", "diff_vs_most_t_ci_high"]].to_string(index=False))
    print_per_neuron(budget_2_runs)
    print(f"\nInterval method: {budget_summary['interval_method'].iloc[0]}")

    FIGURES.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    plot_axes(axis_summary, pd.concat(axis_runs), FIGURES / f"elm_axes{suffix}.png")
    plot_budget(budget_summary, budget_runs, FIGURES / f"elm_budget{suffix}.png", fill="k_e")
    plot_budget(budget_2_summary, budget_2_runs, FIGURES / f"elm_budget_kc{suffix}.png", fill="k_c")
    trainings = len(cache)
    print(f"\n{trainings} trainings; wall {time.perf_counter() - started_wall:.0f} s, "
          f"CPU {time.process_time() - started_cpu:.0f} s (one thread)")


def long_training_check():
    """Do the budget lines' orderings survive 3x longer training? (Extremes and middle only.)"""
    started_cpu = time.process_time()
    pd.set_option("display.width", 200, "display.max_columns", 30, "display.precision", 3)
    base = dataclasses.replace(BASE, epochs=45)
    columns = ["role", "n_neurons", "k_e", "k_c", "parameter_count", "mean", "t_ci_low", "t_ci_high",
               "diff_vs_fewest", "diff_vs_fewest_t_ci_low", "diff_vs_fewest_t_ci_high",
               "diff_vs_most", "diff_vs_most_t_ci_low", "diff_vs_most_t_ci_high"]
    for budget, n_values, fixed, fill in ((BUDGET, (1, 8, 64), {"k_c": BUDGET_K_C}, "k_e"),
                                          (BUDGET_2, (8, 16, 24), {"k_e": BUDGET_2_K_E}, "k_c")):
        _, summary = elm.budget_sweep(budget, base=dataclasses.replace(base, **fixed), n_values=n_values,
                                      seeds=(0, 1, 2), fill=fill)
        print(f"\n== 45 epochs: budget P ~ {budget}, {fill} fills it ==")
        print(summary[columns].to_string(index=False))
    print(f"\nCPU {time.process_time() - started_cpu:.0f} s (one thread)")


def print_per_neuron(runs):
    per_allocation = runs.groupby(["n_neurons", "k_e", "k_c"], sort=False)[
        ["mean_output_snr", "mean_redundancy", "train_seconds"]].mean().reset_index()
    print("Per-neuron measures on this budget line (means over seeds):")
    print(per_allocation.to_string(index=False))


def plot_axes(summary, runs, path):
    figure, axes = plt.subplots(1, 3, figsize=(9, 2.8), sharey=True)
    for ax, (axis, group) in zip(axes, summary.groupby("axis", sort=False)):
        points = runs[runs["axis"] == axis]
        ax.scatter(points["value"], points["test_metric"], s=8, color="0.6", zorder=1)
        ax.errorbar(group["value"], group["mean"], marker="o", color="C0", capsize=3, zorder=2,
                    yerr=[group["mean"] - group["ci_low"], group["ci_high"] - group["mean"]])
        ax.set_xscale("log", base=2)
        names = {"n_neurons": "neurons N", "k_e": "memories per neuron k_e", "k_c": "synapses per neuron k_c"}
        ax.set_xlabel(names[axis])
    axes[0].set_ylabel("test accuracy (sum of 2 digits)")
    figure.suptitle("Each knob alone (others at N=8, k_e=2, k_c=4); mean, 95% bootstrap CI over seeds", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def plot_budget(summary, runs, path, *, fill):
    figure, axes = plt.subplots(1, 3, figsize=(9, 2.8))
    ax = axes[0]
    ax.scatter(runs["n_neurons"], runs["test_metric"], s=8, color="0.6")
    ax.errorbar(summary["n_neurons"], summary["mean"],
                yerr=[summary["mean"] - summary["ci_low"], summary["ci_high"] - summary["mean"]],
                marker="o", capsize=3)
    for row in summary.itertuples():
        ax.annotate(f"{fill}={getattr(row, fill)}", (row.n_neurons, row.mean), fontsize=6, xytext=(2, -9),
                    textcoords="offset points")
    ax.set_ylabel("test accuracy")
    means = runs.groupby("n_neurons")[["mean_output_snr", "mean_redundancy"]].mean()
    axes[1].plot(means.index, means["mean_output_snr"], marker="o")
    axes[1].set_ylabel("mean output SNR")
    axes[2].plot(means.index, means["mean_redundancy"], marker="o")
    axes[2].set_ylabel("mean pairwise redundancy (r^2)")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"neurons N ({fill} fills the budget)")
    fixed = "k_c" if fill == "k_e" else "k_e"
    figure.suptitle(f"One budget P~{int(summary['budget'].iloc[0])} parameters ({fixed}={summary[fixed].iloc[0]}); "
                    "95% bootstrap CI over seeds", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


if __name__ == "__main__":
    main()
