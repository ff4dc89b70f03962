"""``occlusion-recurrence``: does the model recur longer when the image is occluded?

Per seed, the model's time (a readout) is averaged over stimuli at every
occlusion level of the export; the slope of time on occlusion level (least
squares over levels) summarises the effect. Reported: per seed, the
difference between the most occluded level and the unoccluded one with a
bootstrap interval over stimuli; the slope averaged over seeds with a crossed
bootstrap over seeds and stimuli. Where the human dataset has several
conditions, mean RT per condition is reported alongside (the Geirhos sets have
one condition, which the result notes).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from brainres.comparisons._common import (
    COMMON_OPTIONS,
    READOUT,
    ComparisonError,
    bootstrap_bands,
    fmt,
    model_diagnostics,
    readout_required,
    require_variable,
)

from brainres.compare import Comparison, ComparisonResult, match_stimuli
from brainres.stats import crossed_bootstrap
from brainres.stats.result import StatResult

EFFECT_ESTIMAND = ("the mean over the population of stimuli of this seed's time at the highest occlusion level minus "
                   "its time unoccluded (this trained seed)")
SLOPE_ESTIMAND = ("the least-squares slope of time on occlusion level, averaged over the population of training "
                  "seeds and of stimuli")


def _slopes(levels: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Least-squares slope of ``means[..., level]`` on ``levels``."""
    centred = levels - levels.mean()
    return (means * centred).sum(axis=-1) / (centred**2).sum()


def run(model: xr.Dataset, data: xr.Dataset, *, readout: str = "expected_halting_step", n_resamples: int = 10_000,
        seed: int = 0, ci_level: float = 0.95, intersect: bool = False) -> ComparisonResult:
    """Model time as a function of occlusion level, per seed and over seeds."""
    if "occlusion" not in model.dims or model.sizes["occlusion"] < 2:
        raise ComparisonError("the export needs at least two occlusion levels (export with occlusion = [0.0, 0.5, ...])")
    levels = np.asarray(model["occlusion"].values, dtype=float)
    if 0.0 not in levels:
        raise ComparisonError(f"the export has no unoccluded level 0.0 (levels {levels.tolist()})")
    shared, notes = match_stimuli(model["stimulus_id"].values, data["stimulus_id"].values, intersect=intersect,
                                  model_name="the model export", data_name=data.attrs.get("dataset_id", "the data"))
    require_variable(model, readout)
    time = model[readout].sel(stimulus_id=shared).transpose("seed", "occlusion", "stimulus_id").values.astype(float)
    seeds = [int(s) for s in model["seed"].values]
    order = np.argsort(levels)
    levels, time = levels[order], time[:, order, :]
    top = len(levels) - 1
    if np.ptp(time) == 0:
        raise ComparisonError(f"model time ({readout}) does not vary across stimuli or occlusion levels: every value "
                              f"is {time.flat[0]:g}, so there is no effect of occlusion to estimate (is the model "
                              "above chance? does it halt?)")
    _, diagnostic_notes, warnings = model_diagnostics(model.sel(stimulus_id=shared), time[:, 0, :], readout)
    notes = [*notes, *diagnostic_notes, *(f"Warning: {w}." for w in warnings)]
    flagged = {"warning": "; ".join(warnings)} if warnings else {}
    results = []
    for index, model_seed in enumerate(seeds):
        difference = time[index, top, :] - time[index, 0, :]

        def mean_difference(weights, difference=difference):
            return weights["stimulus"] @ difference

        result = crossed_bootstrap(mean_difference, {"stimulus": len(shared)}, n_resamples=n_resamples, seed=seed,
                                   ci_level=ci_level, statistic_name="occlusion_effect", n=len(shared),
                                   extra={"model_seed": model_seed, "occlusion_high": float(levels[top]),
                                          "label": f"seed {model_seed}: steps at {levels[top]:g} minus unoccluded",
                                          "estimand": EFFECT_ESTIMAND, **flagged})
        results.append(result)

    def mean_slope(weights):
        per_level = np.einsum("bi,sli->bsl", weights["stimulus"], time)
        return (weights["seed"] * _slopes(levels, per_level)).sum(axis=1)

    factors = ("seed", "stimulus") if len(seeds) > 1 else ("stimulus",)
    slope = crossed_bootstrap(mean_slope, {"seed": len(seeds), "stimulus": len(shared)}, resample=factors,
                              n_resamples=n_resamples, seed=seed, ci_level=ci_level, statistic_name="slope",
                              n=len(shared), extra={"label": "slope of steps on occlusion level, mean over seeds",
                                                    "units": "steps per unit occlusion", "estimand": SLOPE_ESTIMAND,
                                                    **flagged})
    results.append(slope.replace(extra={**slope.extra, "headline": True}))
    seed_level_slopes = _slopes(levels, time.mean(axis=2))
    results.append(StatResult(statistic="slope", estimate=float(seed_level_slopes.min()), n=len(seeds),
                              method="smallest per-seed slope (no interval)",
                              extra={"label": "smallest per-seed slope", "n_unit": "seeds"}))

    conditions = np.unique(data["condition"].values.astype(str)) if "condition" in data.coords else np.array([])
    if conditions.size > 1 and "rt" in data:
        for condition in conditions:
            rt = data["rt"].values[data["condition"].values.astype(str) == condition]
            results.append(StatResult(statistic="mean_rt", estimate=float(np.nanmean(rt)),
                                      n=int(np.sum(~np.isnan(rt))), method="mean over trials",
                                      extra={"label": f"human mean RT, condition {condition}", "n_unit": "trials"}))
    else:
        notes.append(f"{data.attrs.get('dataset_id', 'The data')} has a single condition; no human RT by condition "
                     "to set against the occlusion levels.")

    stimulus_mean = time.mean(axis=2)  # (seed, level)
    low, high = bootstrap_bands(time, seed=seed, ci_level=ci_level)  # (seed, level)
    figure = xr.Dataset(
        {"y": (("series", "x"), stimulus_mean), "y_low": (("series", "x"), low), "y_high": (("series", "x"), high)},
        coords={"series": [f"seed {s}" for s in seeds], "x": levels},
        attrs={"figure": "lines", "title": f"{readout.replace('_', ' ')} by occlusion level",
               "x_label": "fraction of the image occluded", "y_label": f"mean {readout.replace('_', ' ')}",
               "annotation": f"slope = {fmt(slope.estimate)} steps per unit occlusion, 95% CI "
                             f"[{fmt(slope.ci_low)}, {fmt(slope.ci_high)}]",
               "caption": "Mean over stimuli per seed; bands: 95% percentile bootstrap over stimuli (1,000 resamples)."},
    )
    methods = (
        f"occlusion-recurrence: the model's {readout.replace('_', ' ')} was averaged over the {len(shared)} stimuli "
        f"of {data.attrs.get('dataset_id', 'the stimulus set')} at occlusion levels {', '.join(f'{l:g}' for l in levels)} "
        f"for each of {len(seeds)} seeds. Per seed, the difference between level {levels[top]:g} and 0 has a BCa "
        f"interval from {n_resamples:,} bootstrap resamples of stimuli (seed {seed}); the least-squares slope on "
        f"occlusion level, averaged over seeds, has a BCa interval from a crossed bootstrap of seeds and stimuli "
        f"({n_resamples:,} resamples, dual-bootstrap variance correction)."
    )
    return ComparisonResult(comparison="occlusion-recurrence", title=f"Recurrence under occlusion ({data.attrs.get('dataset_id', '')})",
                            results=results, figures={"occlusion": figure}, methods=methods, notes=notes,
                            inputs={"n_stimuli": int(len(shared)), "n_seeds": len(seeds), "readout": readout})


COMPARISON = Comparison(id="occlusion-recurrence", description="model steps as a function of occlusion level", run=run,
                        requires=readout_required, min_occlusion_levels=2, occlusion_levels=lambda options: (0.0,),
                        options={"readout": READOUT, **COMMON_OPTIONS})
