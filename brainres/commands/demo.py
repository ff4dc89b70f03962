"""``brainres demo``: the main job on a fresh machine, with no configuration.

At this stage of the project the demo covers the data layer: it loads the
human reaction-time datasets the comparison pipeline uses (Geirhos 2021 edge,
silhouette, cue-conflict) with their stimuli, checks every trial's stimulus
has an image, and writes a summary (JSON + validated netCDF copies + a figure
of the RT distributions) into the output folder.
"""

from __future__ import annotations

import json
from pathlib import Path

DEMO_DATASETS = ("geirhos2021-edge", "geirhos2021-silhouette", "geirhos2021-cue-conflict")


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the main job with the shipped defaults")
    parser.add_argument("--out", default="brainres-demo", help="output folder (default: ./brainres-demo)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tqdm import tqdm

    from brainres.data.io import atomic_write_text, write_netcdf
    from brainres.data.registry import load_dataset, load_stimuli
    from brainres.data.summary import describe
    from brainres.errors import StimulusMismatchError

    out = Path(args.out)
    summaries, trials_by_id = {}, {}
    for dataset_id in tqdm(DEMO_DATASETS, desc="loading datasets", unit="dataset"):
        trials = load_dataset(dataset_id, progress=True)
        stimuli = load_stimuli(dataset_id, progress=True)
        seen = set(trials["stimulus_id"].values.astype(str))
        shown = set(stimuli["stimulus_id"].values.astype(str))
        if seen != shown:
            raise StimulusMismatchError(sorted(shown - seen), sorted(seen - shown), "trials", "stimuli")
        write_netcdf(trials, out / f"{dataset_id}_trials.nc")
        summaries[dataset_id] = describe(trials) | {"images": list(map(int, stimuli["image"].shape))}
        trials_by_id[dataset_id] = trials
    atomic_write_text(out / "data_summary.json", json.dumps(summaries, indent=2))
    figure = _plot_rts(trials_by_id, out / "rt_distributions.png")
    for dataset_id, facts in summaries.items():
        rt = facts["rt_seconds"]
        print(f"{dataset_id}: {facts['subjects']} subjects, {facts['trials']} trials, {facts['stimuli']} stimuli "
              f"with images, median RT {rt['median']} s, {facts['missed_responses']} missed, "
              f"accuracy {facts['accuracy']:.3f}")
    print(f"summary: {out / 'data_summary.json'}")
    print(f"figure:  {figure}")
    return 0


def _plot_rts(trials_by_id, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from brainres.data.io import atomic_path

    fig, axes = plt.subplots(1, len(trials_by_id), figsize=(4 * len(trials_by_id), 3.2), sharey=False)
    for ax, (dataset_id, trials) in zip(np.atleast_1d(axes), trials_by_id.items()):
        rt = trials["rt"].values
        ax.hist(rt[~np.isnan(rt)], bins=np.linspace(0, 1.6, 33), color="0.35")
        ax.set_title(dataset_id, fontsize=9)
        ax.set_xlabel("reaction time (s)")
    np.atleast_1d(axes)[0].set_ylabel("trials")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
