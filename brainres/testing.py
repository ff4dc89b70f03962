"""Small valid datasets of every kind of the data model.

For tests (of brainres and of plug-ins) that break one thing at a time, and as
executable examples of the schema in docs/data-model.md.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

PROVENANCE = {"dataset_id": "test", "source": "made in a test", "license": "CC0", "citation": "none"}


def human_trials(n_subjects=3, n_stimuli=4, seed=0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    subject = np.repeat([f"s{i}" for i in range(n_subjects)], n_stimuli)
    stimulus = np.tile([f"img{i}" for i in range(n_stimuli)], n_subjects)
    rt = rng.uniform(0.3, 1.2, subject.size)
    rt[1] = np.nan
    response = np.where(np.isnan(rt), "", "cat")
    ds = xr.Dataset(
        {"rt": ("trial", rt, {"units": "s"}), "response": ("trial", response),
         "correct": ("trial", response == "cat")},
        coords={"subject": ("trial", subject), "stimulus_id": ("trial", stimulus),
                "condition": ("trial", np.full(subject.size, "a")), "session": ("trial", np.full(subject.size, "1")),
                "trial_index": ("trial", np.tile(np.arange(n_stimuli), n_subjects))},
        attrs=PROVENANCE | {"brainres_kind": "human_trials",
                            "exclusions": [{"rule": "missed responses kept", "n_trials": 1}]},
    )
    return ds


def stimuli(n=4, seed=0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {"image": (("stimulus_id", "y", "x", "channel"), rng.integers(0, 256, (n, 5, 6, 3), dtype=np.uint8)),
         "category": ("stimulus_id", np.array(["cat", "dog"] * (n // 2)))},
        coords={"stimulus_id": [f"img{i}" for i in range(n)]},
        attrs=PROVENANCE | {"brainres_kind": "stimuli"},
    )


def neural_rdms(n_rdms=2, n=5, seed=0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    mats = []
    for _ in range(n_rdms):
        m = rng.uniform(0, 2, (n, n))
        m = (m + m.T) / 2
        np.fill_diagonal(m, 0)
        mats.append(m)
    ids = [f"img{i}" for i in range(n)]
    return xr.Dataset(
        {"dissimilarity": (("rdm", "stimulus_id", "stimulus_id_2"), np.stack(mats))},
        coords={"rdm": [f"r{i}" for i in range(n_rdms)], "stimulus_id": ids, "stimulus_id_2": ids,
                "measure": ("rdm", ["1 - Pearson r"] * n_rdms), "subject": ("rdm", [f"s{i}" for i in range(n_rdms)]),
                "session": ("rdm", ["1"] * n_rdms), "region": ("rdm", ["IT"] * n_rdms)},
        attrs=PROVENANCE | {"brainres_kind": "neural_rdms"},
    )


def neural_responses(n_stimuli=4, n_neuroids=3, n_reps=2, seed=0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {"response": (("stimulus_id", "neuroid", "repetition"), rng.normal(size=(n_stimuli, n_neuroids, n_reps)))},
        coords={"stimulus_id": [f"img{i}" for i in range(n_stimuli)],
                "neuroid": [f"n{i}" for i in range(n_neuroids)], "repetition": np.arange(n_reps),
                "region": ("neuroid", ["IT"] * n_neuroids)},
        attrs=PROVENANCE | {"brainres_kind": "neural_responses"},
    )


def model_measures(n_seeds=2, n_stimuli=4, n_steps=3, seed=0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(n_steps), size=(n_seeds, n_stimuli, 2))
    return xr.Dataset(
        {"halting_probability": (("seed", "stimulus_id", "occlusion", "step"), p),
         "expected_halting_step": (("seed", "stimulus_id", "occlusion"), (p * np.arange(1, n_steps + 1)).sum(-1)),
         "accuracy": ("seed", rng.uniform(0.5, 1, n_seeds))},
        coords={"seed": np.arange(n_seeds), "stimulus_id": [f"img{i}" for i in range(n_stimuli)],
                "step": np.arange(1, n_steps + 1), "occlusion": [0.0, 0.5]},
        attrs={"brainres_kind": "model_measures", "model_family": "lattice",
               "pressures": {"lambda_time": 0.01}, "config_hash": "abc123",
               "brainres_version": "0.1.0", "training_data": "digits"},
    )


def human_labels(n=3) -> xr.Dataset:
    counts = np.array([[5, 0], [2, 3], [0, 5]])[:n]
    return xr.Dataset(
        {"counts": (("stimulus_id", "label"), counts),
         "probability": (("stimulus_id", "label"), counts / counts.sum(1, keepdims=True))},
        coords={"stimulus_id": [f"img{i}" for i in range(n)], "label": [0, 1]},
        attrs=PROVENANCE | {"brainres_kind": "human_labels"},
    )


BUILDERS = {
    "human_trials": human_trials, "stimuli": stimuli, "neural_rdms": neural_rdms,
    "neural_responses": neural_responses, "model_measures": model_measures, "human_labels": human_labels,
}


def planted_time_and_rt(*, correlation: float, n_seeds=3, n_stimuli=120, n_subjects=10, seed_noise=0.3,
                        subject_noise=0.5, n_steps=6, seed=0):
    """A model export and human trials whose per-stimulus link is known.

    Each stimulus has a difficulty ``d`` (standard normal). Model time per seed
    is ``3 + d + seed_noise * noise``; human RT per subject is
    ``0.8 + 0.1 * (correlation * d + sqrt(1 - correlation**2) * u + subject_noise * noise)``
    with ``u`` standard normal per stimulus. The population correlation of the
    *noise-free* per-stimulus quantities is ``correlation``; averaging over
    finitely many seeds and subjects attenuates it, which the noise ceiling
    corrects.

    Returns
    -------
    (model_measures, human_trials)
    """
    rng = np.random.default_rng(seed)
    difficulty = rng.standard_normal(n_stimuli)
    unique = rng.standard_normal(n_stimuli)
    ids = [f"stim{i:04d}" for i in range(n_stimuli)]
    time = 3 + difficulty[None, :] + seed_noise * rng.standard_normal((n_seeds, n_stimuli))
    halting = np.full((n_seeds, n_stimuli, 1, n_steps), 1.0 / n_steps)
    model = xr.Dataset(
        {"expected_halting_step": (("seed", "stimulus_id", "occlusion"), time[..., None]),
         "halting_probability": (("seed", "stimulus_id", "occlusion", "step"), halting)},
        coords={"seed": np.arange(n_seeds), "stimulus_id": ids, "occlusion": [0.0],
                "step": np.arange(1, n_steps + 1)},
        attrs={"brainres_kind": "model_measures", "model_family": "synthetic", "pressures": {},
               "config_hash": "planted", "brainres_version": "test", "training_data": "none"},
    )
    latent = correlation * difficulty + np.sqrt(1 - correlation**2) * unique
    rt = 0.8 + 0.1 * (latent[None, :] + subject_noise * rng.standard_normal((n_subjects, n_stimuli)))
    subject = np.repeat([f"sub{j:02d}" for j in range(n_subjects)], n_stimuli)
    trials = xr.Dataset(
        {"rt": ("trial", rt.ravel(), {"units": "s"}), "response": ("trial", np.full(rt.size, "a")),
         "correct": ("trial", rng.random(rt.size) < 0.8)},
        coords={"subject": ("trial", subject), "stimulus_id": ("trial", np.tile(ids, n_subjects)),
                "condition": ("trial", np.full(rt.size, "")), "session": ("trial", np.full(rt.size, "1")),
                "trial_index": ("trial", np.tile(np.arange(n_stimuli), n_subjects))},
        attrs=PROVENANCE | {"brainres_kind": "human_trials", "exclusions": [], "dataset_id": "planted"},
    )
    return model, trials


# --- a small registered-able dataset for pipeline tests -------------------------------
TOY_STIMULI, TOY_SUBJECTS = 60, 5


def _toy_stimuli(paths=None):
    from brainres.data.registry import load_stimuli

    stimuli = load_stimuli("digits").isel(stimulus_id=slice(0, TOY_STIMULI))
    stimuli.attrs = {}
    return stimuli


def _toy_trials(paths=None):
    rng = np.random.default_rng(0)
    ids = _toy_stimuli()["stimulus_id"].values
    rt = 0.6 + 0.1 * rng.random((TOY_SUBJECTS, TOY_STIMULI))
    n = rt.size
    return xr.Dataset(
        {"rt": ("trial", rt.ravel(), {"units": "s"}), "response": ("trial", np.full(n, "1")),
         "correct": ("trial", rng.random(n) < 0.8)},
        coords={"subject": ("trial", np.repeat([f"p{j}" for j in range(TOY_SUBJECTS)], TOY_STIMULI)),
                "stimulus_id": ("trial", np.tile(ids, TOY_SUBJECTS)), "condition": ("trial", np.full(n, "")),
                "session": ("trial", np.full(n, "1")), "trial_index": ("trial", np.tile(np.arange(TOY_STIMULI), TOY_SUBJECTS))},
        attrs={"exclusions": []})


def _toy_spec():
    from brainres.data.registry import DatasetSpec

    return DatasetSpec(id="toy-digit-rts", kind="human_trials",
                       description="toy: 60 digits with synthetic RTs of 5 subjects (for tests)", folder="toy",
                       source=PROVENANCE["source"], license="CC0", citation="none", load=_toy_trials,
                       load_stimuli=_toy_stimuli)


TOY_TRIALS = _toy_spec()
TOY_PLUGIN = "brainres.testing:TOY_TRIALS"  # for BRAINRES_DATASET_PLUGINS


_TOY_OPTIONS = {
    "time-vs-rt": {"n_resamples": 300, "n_splits": 20, "mixed_model": False},
    "occlusion-recurrence": {"n_resamples": 300},
    "speed-accuracy": {"n_resamples": 300},
}


def toy_pipeline(*, epochs: int = 1, seeds=(0, 1), comparisons=tuple(_TOY_OPTIONS), executor: str = "in-process") -> dict:
    """A pipeline mapping small enough for tests: a tiny lattice on 'toy-digit-rts' (set TOY_PLUGIN)."""
    data = "toy-digit-rts"
    return {
        "run": {"name": "toy", "executor": executor},
        "model": [{"name": "tiny", "family": "lattice", "data": data, "seeds": list(seeds),
                   "lattice": {"max_channels": 4, "max_layers": 1, "max_steps": 3},
                   "training": {"epochs": epochs, "batch_size": 16 if epochs > 1 else 32}}],
        "export": [{"model": "tiny", "stimuli": data, "occlusion": [0.0, 0.5]}],
        "comparison": [{"kind": kind, "model": "tiny", "stimuli": data, "data": data,
                        "options": dict(_TOY_OPTIONS[kind])} for kind in comparisons],
    }


# --- a tiny user model for the torch family's examples and shared checks ---------------------
def tiny_recurrent_net(n_classes: int = 10, in_channels: int = 1, steps: int = 3, width: int = 4):
    """A small recurrent conv net meeting the image-model contract (for tests and examples)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class TinyRecurrentNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.steps = steps
            self.up = nn.Conv2d(in_channels, width, 3, padding=1)
            self.lateral = nn.Conv2d(width, width, 3, padding=1, bias=False)
            self.readout = nn.Linear(width, n_classes)

        def forward(self, images):
            state, logits, maps = None, [], []
            for _ in range(self.steps):
                drive = self.up(images) if state is None else self.up(images) + self.lateral(state)
                state = F.relu(drive)
                maps.append(state)
                logits.append(self.readout(state.mean(dim=(2, 3))))
            return {"logits": torch.stack(logits, 1), "latents": {"conv": torch.stack(maps, 1)}}

    return TinyRecurrentNet()
