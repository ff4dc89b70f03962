"""Figure of the human reaction-time datasets: RT distributions and per-stimulus means.

Run: ``BRAINRES_DATA=... python docs/experiments/datasets_overview.py`` -> docs/figures/datasets_rt.png
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import brainres  # noqa: E402
from brainres.data.summary import describe  # noqa: E402

IDS = ("geirhos2021-edge", "geirhos2021-silhouette", "geirhos2021-cue-conflict")


def main():
    fig, axes = plt.subplots(2, 3, figsize=(11, 6))
    for column, dataset_id in enumerate(IDS):
        trials = brainres.load_dataset(dataset_id)
        facts = describe(trials)
        rt = trials["rt"].values
        axes[0, column].hist(rt[~np.isnan(rt)], bins=np.linspace(0.3, 1.55, 40), color="0.4")
        axes[0, column].set_title(f"{dataset_id}\n{facts['subjects']} subjects, {facts['trials']} trials, "
                                  f"{facts['stimuli']} stimuli", fontsize=9)
        axes[0, column].set_xlabel("reaction time (s)")
        frame = trials[["rt", "correct"]].to_dataframe().assign(stimulus=trials["stimulus_id"].values)
        per_stimulus = frame.groupby("stimulus").agg(rt=("rt", "mean"), accuracy=("correct", "mean"))
        axes[1, column].scatter(per_stimulus["rt"], per_stimulus["accuracy"], s=6, alpha=0.6)
        axes[1, column].set_xlabel("per-stimulus mean RT (s)")
        axes[1, column].set_ylabel("per-stimulus accuracy")
    axes[0, 0].set_ylabel("trials")
    fig.tight_layout()
    out = Path(__file__).resolve().parents[1] / "figures" / "datasets_rt.png"
    fig.savefig(out, dpi=90)
    print(out)


if __name__ == "__main__":
    main()
