"""Helpers shared by comparison plug-ins (not a plug-in itself)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from brainres.errors import BrainresError

READOUTS = ("expected_halting_step", "median_halting_step", "entropy_threshold_step", "uncertainty_auc")


class ComparisonError(BrainresError, ValueError):
    """A comparison's inputs or options do not fit together."""


def model_measure(model: xr.Dataset, name: str, occlusion: float | None = 0.0) -> xr.DataArray:
    """A per-stimulus model measure as ``(seed, stimulus_id)``, at one occlusion level."""
    if name not in model:
        available = [v for v in model.data_vars if {"seed", "stimulus_id"} <= set(model[v].dims)]
        raise ComparisonError(f"the model export has no variable {name!r}; per-stimulus variables: {available}")
    values = model[name]
    if "occlusion" in values.dims:
        levels = [float(v) for v in model["occlusion"].values]
        if occlusion is None or float(occlusion) not in levels:
            raise ComparisonError(f"occlusion level {occlusion!r} is not in the export (levels {levels})")
        values = values.sel(occlusion=float(occlusion))
    extra = set(values.dims) - {"seed", "stimulus_id"}
    if extra:
        raise ComparisonError(f"variable {name!r} has dimension(s) {sorted(extra)} besides seed and stimulus_id")
    return values.transpose("seed", "stimulus_id").astype(float)


def per_subject(trials: xr.Dataset, value: str = "rt", *, correct_only: bool = False) -> xr.DataArray:
    """Per-subject, per-stimulus mean of a trial variable as ``(subject, stimulus_id)`` (NaN where missing)."""
    table = pd.DataFrame({
        "subject": trials["subject"].values.astype(str),
        "stimulus_id": trials["stimulus_id"].values.astype(str),
        "value": np.asarray(trials[value].values, dtype=float),
    })
    if correct_only:
        table.loc[~np.asarray(trials["correct"].values, dtype=bool), "value"] = np.nan
    matrix = table.pivot_table(index="subject", columns="stimulus_id", values="value", aggfunc="mean", dropna=False,
                               sort=False)
    # keep the stimulus order of first appearance; pivot_table would otherwise sort
    order = list(dict.fromkeys(table["stimulus_id"]))
    matrix = matrix.reindex(columns=order)
    return xr.DataArray(matrix.to_numpy(float), dims=("subject", "stimulus_id"),
                        coords={"subject": matrix.index.astype(str).to_numpy(), "stimulus_id": np.array(order)})


def fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def bootstrap_bands(values: np.ndarray, *, seed: int, ci_level: float = 0.95, n_draws: int = 1000):
    """Percentile band over stimuli (last axis) of the mean of ``values``: for figures only.

    The estimates a comparison reports carry their own intervals from the
    statistics engine; these bands just show the spread in the plots.
    """
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, values.shape[-1], size=(n_draws, values.shape[-1]))
    boot = values[..., draws].mean(axis=-1)
    alpha = 100 * (1 - ci_level) / 2
    return np.percentile(boot, alpha, axis=-1), np.percentile(boot, 100 - alpha, axis=-1)
