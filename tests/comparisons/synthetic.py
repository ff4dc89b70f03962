"""Synthetic model exports with a known answer, for the comparison tests."""

import numpy as np
import xarray as xr

from brainres.testing import PROVENANCE

ATTRS = {"brainres_kind": "model_measures", "model_family": "synthetic", "pressures": {}, "config_hash": "x",
         "brainres_version": "test", "training_data": "none"}


def export(*, n_seeds=3, n_stimuli=60, n_steps=5, levels=(0.0, 0.25, 0.5), occlusion_effect=1.0,
           accuracy_by_step=(0.3, 0.5, 0.7, 0.8, 0.9), slow_errors=1.0, latent=None, seed=0):
    """A synthetic ``model_measures`` export with planted effects.

    ``latent``, if given, maps a layer name to its states, an array (seed,
    stimulus, occlusion, step, unit); layers may differ in width. They are
    written as brainres writes them: one variable ``latent`` (seed,
    stimulus_id, occlusion, step, feature) with coordinates ``feature_layer``
    and ``feature_unit`` along ``feature``.
    """
    rng = np.random.default_rng(seed)
    ids = [f"s{i:03d}" for i in range(n_stimuli)]
    levels = np.asarray(levels, float)
    base = 2.5 + rng.normal(0, 0.3, n_stimuli)
    # probability correct rises over steps; errors are slower by `slow_errors` steps
    correct = rng.random((n_seeds, n_stimuli, n_steps)) < np.asarray(accuracy_by_step)[None, None, :]
    correct = np.repeat(correct[:, :, None, :], len(levels), axis=2)
    time = (base[None, :, None] + occlusion_effect * levels[None, None, :]
            + rng.normal(0, 0.4, (n_seeds, n_stimuli, len(levels)))
            + slow_errors * (~correct[..., -1]))
    halting = rng.dirichlet(np.ones(n_steps), size=(n_seeds, n_stimuli, len(levels)))
    data = {
        "expected_halting_step": (("seed", "stimulus_id", "occlusion"), time),
        "halting_probability": (("seed", "stimulus_id", "occlusion", "step"), halting),
        "correct": (("seed", "stimulus_id", "occlusion", "step"), correct),
        "halted_correct": (("seed", "stimulus_id", "occlusion"), correct[..., -1]),
    }
    coords = {"seed": np.arange(n_seeds), "stimulus_id": ids, "occlusion": levels, "step": np.arange(1, n_steps + 1)}
    if latent is not None:
        data["latent"] = (("seed", "stimulus_id", "occlusion", "step", "feature"),
                          np.concatenate(list(latent.values()), axis=4))
        widths = {name: value.shape[4] for name, value in latent.items()}
        coords.update(feature_layer=("feature", [name for name, width in widths.items() for _ in range(width)]),
                      feature_unit=("feature", [unit for width in widths.values() for unit in range(width)]))
    return xr.Dataset(data, coords=coords, attrs=ATTRS)


def trials_for(ids, *, n_subjects=8, error_slowdown=0.1, seed=0):
    rng = np.random.default_rng(seed)
    n = len(ids)
    correct = rng.random((n_subjects, n)) < 0.75
    rt = 0.7 + 0.1 * rng.standard_normal((n_subjects, n)) + error_slowdown * ~correct
    return xr.Dataset(
        {"rt": ("trial", rt.ravel(), {"units": "s"}), "response": ("trial", np.full(rt.size, "a")),
         "correct": ("trial", correct.ravel())},
        coords={"subject": ("trial", np.repeat([f"p{j}" for j in range(n_subjects)], n)),
                "stimulus_id": ("trial", np.tile(ids, n_subjects)), "condition": ("trial", np.full(rt.size, "")),
                "session": ("trial", np.full(rt.size, "1")), "trial_index": ("trial", np.tile(np.arange(n), n_subjects))},
        attrs=PROVENANCE | {"brainres_kind": "human_trials", "exclusions": [], "dataset_id": "synthetic-trials"},
    )
