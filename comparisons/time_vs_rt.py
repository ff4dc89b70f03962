"""``time-vs-rt``: does the model take longer where people take longer?

Per-stimulus model time (a readout of the export, averaged over seeds) is
correlated with per-stimulus mean human reaction time (averaged over subjects).
The correlation gets three intervals: the analytic one (Fisher z, with its
p-value), a two-factor bootstrap over model seeds and stimuli, and a
three-factor bootstrap that also resamples subjects. The human data's
split-half reliability gives the noise ceiling and the noise-corrected
(disattenuated) correlation. A linear mixed model of trial-level log RT on
the (standardised) model time with crossed random intercepts for subjects and
stimuli tests the same relation trial by trial.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from brainres.compare import Comparison, ComparisonResult, match_stimuli
from brainres.stats import (
    bootstrap_correlation,
    correlate,
    disattenuated_correlation,
    mixed_model_results,
    partial_correlation,
    rt_mixed_model,
    split_half_reliability,
)
from brainres.comparisons._common import (
    COMMON_OPTIONS, OCCLUSION, READOUT, ComparisonError, fmt, model_measure, per_subject, readout_required,
    require_variation,
)
from brainres.settings import Boolean, Choice, Integer


def run(
    model: xr.Dataset,
    trials: xr.Dataset,
    *,
    readout: str = "expected_halting_step",
    occlusion: float = 0.0,
    method: str = "spearman",
    correct_only: bool = False,
    control_accuracy: bool = False,
    mixed_model: bool = True,
    n_resamples: int = 10_000,
    n_splits: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
    intersect: bool = False,
) -> ComparisonResult:
    """Correlate model time with human RT per stimulus.

    Parameters
    ----------
    model : xarray.Dataset
        A model-measures export (dims ``seed``, ``stimulus_id``, ``occlusion``).
    trials : xarray.Dataset
        Human trials (``rt`` in seconds).
    readout : str
        Which model time: one of ``expected_halting_step``,
        ``median_halting_step`` (models with halting), ``entropy_threshold_step``,
        ``uncertainty_auc``, or any per-stimulus variable of the export (a
        column of precomputed measures).
    occlusion : float
        The export's occlusion level to use (humans saw unoccluded images).
    method : {"spearman", "pearson"}
    correct_only : bool
        Use only trials the subject answered correctly.
    control_accuracy : bool
        Add the partial correlation controlling for per-stimulus human accuracy.
    mixed_model : bool
        Fit the trial-level mixed model.
    n_resamples, n_splits, seed, ci_level
        Bootstrap resamples, split-half splits, the seed of every draw, interval level.
    intersect : bool
        Use the stimuli common to both sides instead of failing on a mismatch.
    """
    if method not in ("spearman", "pearson"):
        raise ComparisonError(f"method must be 'spearman' or 'pearson', got {method!r}")
    time = model_measure(model, readout, occlusion)
    human = per_subject(trials, "rt", correct_only=correct_only)
    shared, notes = match_stimuli(time["stimulus_id"].values, human["stimulus_id"].values, intersect=intersect,
                                  model_name="the model export", data_name=trials.attrs.get("dataset_id", "the human data"))
    time = time.sel(stimulus_id=shared)
    human = human.sel(stimulus_id=shared)
    model_matrix, human_matrix = time.values, human.values
    unanswered = np.isnan(human_matrix).all(axis=0)
    if unanswered.any():
        which = "correct " if correct_only else "answered "
        ids = [str(s) for s in np.asarray(shared)[unanswered]]
        raise ComparisonError(
            f"{trials.attrs.get('dataset_id', 'the human data')} has no {which}trial of {len(ids)} of the "
            f"{len(shared)} stimuli, so no human RT to compare with: {', '.join(map(repr, ids[:8]))}"
            + (f" (and {len(ids) - 8} more)" if len(ids) > 8 else "")
            + "; leave them out of the data or the export" + (", or set correct_only = false" if correct_only else ""))
    model_mean, human_mean = model_matrix.mean(axis=0), np.nanmean(human_matrix, axis=0)
    require_variation(model_mean, readout, n_steps=model.sizes.get("step"))
    common = {"method": method, "ci_level": ci_level}

    results = []
    analytic = correlate(model_mean, human_mean, **common)
    results.append(analytic.replace(extra={**analytic.extra, "label": "model time vs human RT (analytic CI)"}))
    for factors, label in ((("seed", "stimulus"), "two-factor bootstrap (seeds x stimuli)"),
                           (("seed", "stimulus", "subject"), "three-factor bootstrap (seeds x stimuli x subjects)")):
        factors = tuple(f for f in factors if f != "seed" or model_matrix.shape[0] > 1)
        boot = bootstrap_correlation(model_matrix, human_matrix, resample=factors, n_resamples=n_resamples,
                                     seed=seed, **common)
        results.append(boot.replace(extra={**boot.extra, "label": f"model time vs human RT, {label}"}))
    reliability = split_half_reliability(human_matrix, method="pearson" if method == "pearson" else "spearman",
                                         n_splits=n_splits, n_resamples=min(n_resamples, 2000), seed=seed,
                                         ci_level=ci_level)
    results.append(reliability.replace(extra={**reliability.extra, "label": "human split-half reliability (noise ceiling)"}))
    corrected = disattenuated_correlation(model_matrix, human_matrix, method=method, n_splits=n_splits,
                                          n_resamples=min(n_resamples, 2000), seed=seed, ci_level=ci_level)
    results.append(corrected.replace(extra={**corrected.extra, "label": "noise-corrected correlation"}))
    if control_accuracy:
        accuracy = per_subject(trials, "correct").sel(stimulus_id=shared).values
        partial = partial_correlation(model_mean, human_mean, np.nanmean(accuracy, axis=0), **common)
        results.append(partial.replace(extra={**partial.extra, "label": "partial correlation controlling for human accuracy"}))
    mixed_table = None
    if mixed_model:
        standardised = (model_mean - model_mean.mean()) / model_mean.std()
        measure = xr.DataArray(standardised, dims="stimulus_id", coords={"stimulus_id": shared}, name="model_time_z")
        subset = trials.isel(trial=np.isin(trials["stimulus_id"].values.astype(str), shared))
        if correct_only:
            subset = subset.isel(trial=np.asarray(subset["correct"].values, dtype=bool))
        subset = subset.isel(trial=~np.isnan(subset["rt"].values))
        mixed_table = rt_mixed_model(subset, measure, ci_level=ci_level)
        for row in mixed_model_results(mixed_table):
            if "model_time_z" in row.statistic:
                results.append(row.replace(extra={**row.extra, "label": "mixed model: log RT per SD of model time"}))

    ceiling = float(np.sqrt(reliability.estimate)) if reliability.estimate > 0 else float("nan")
    # the findings the report's summary leads with: the interval over seeds, stimuli and subjects, and the
    # noise-corrected correlation
    for index, result in enumerate(results):
        if "three-factor" in str(result.extra.get("label")) or result.extra.get("label") == "noise-corrected correlation":
            results[index] = result.replace(extra={**result.extra, "headline": True, "ceiling": ceiling})
    figure = xr.Dataset(
        {
            "x": ("point", model_mean), "y": ("point", human_mean),
            "x_low": ("point", model_matrix.min(axis=0)), "x_high": ("point", model_matrix.max(axis=0)),
        },
        coords={"stimulus_id": ("point", shared)},
        attrs={
            "figure": "scatter", "title": f"{readout.replace('_', ' ')} vs human RT",
            "x_label": f"model {readout.replace('_', ' ')} (mean over {model_matrix.shape[0]} seeds; bars: range)",
            "y_label": "human mean RT (s)",
            "annotation": f"{method} r = {fmt(analytic.estimate)}, 95% CI [{fmt(results[1].ci_low)}, "
                          f"{fmt(results[1].ci_high)}]\nceiling (sqrt reliability) = "
                          + (fmt(ceiling) if ceiling == ceiling else "n/a (reliability <= 0)"),
            "caption": "Each point is a stimulus. Red: least-squares line. Interval: bootstrap over seeds and stimuli.",
        },
    )
    trial_note = "correct trials only" if correct_only else "all answered trials (missed responses excluded)"
    methods = (
        f"time-vs-rt: per stimulus, the model's {readout.replace('_', ' ')} at occlusion {occlusion} was averaged over "
        f"{model_matrix.shape[0]} seeds and human RT over {human_matrix.shape[0]} subjects ({trial_note}); "
        f"{len(shared)} stimuli. {method.capitalize()} correlations: analytic (Fisher z) interval and p-value; "
        f"bootstrap intervals with {n_resamples:,} resamples (seed {seed}) of seeds and stimuli, and of seeds, "
        f"stimuli and subjects, with the dual-bootstrap variance correction. Noise ceiling: split-half "
        f"reliability of per-stimulus mean RT over {n_splits} random subject splits, Spearman-Brown corrected; "
        f"noise-corrected correlation = r / sqrt(reliability_human x reliability_model)."
        + (f" Mixed model: {mixed_table.attrs.get('formula', '')} fitted by REML (statsmodels), model time "
           "standardised over stimuli." if mixed_table is not None else "")
    )
    return ComparisonResult(
        comparison="time-vs-rt", title=f"Model time vs human RT ({trials.attrs.get('dataset_id', '')})",
        results=results, figures={"scatter": figure}, methods=methods, notes=notes,
        inputs={"n_stimuli": int(len(shared)), "n_seeds": int(model_matrix.shape[0]),
                "n_subjects": int(human_matrix.shape[0]), "readout": readout},
    )


COMPARISON = Comparison(
    id="time-vs-rt", description="per-stimulus model time vs human reaction time", run=run, requires=readout_required,
    options={"readout": READOUT, "occlusion": OCCLUSION, "method": Choice("spearman", "pearson"),
             "correct_only": Boolean(), "control_accuracy": Boolean(), "mixed_model": Boolean(),
             "n_splits": Integer(low=1), **COMMON_OPTIONS},
)
