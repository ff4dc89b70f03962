"""``model-comparison``: which of several models' time is closest to human reaction times, and is it real?

Every model's per-stimulus time (its readout, averaged over its seeds) is
correlated with the per-stimulus mean human RT, as in ``time-vs-rt``. One
paired bootstrap then resamples the same stimuli and the same subjects for
every model (and each model's own seeds), so the difference between two
models' correlations gets an interval that knows the models were measured on
the same data (a crossed bootstrap over stimuli, subjects and each model's
seeds, with the dual variance correction and a bias-shifted percentile
interval, as for one correlation); p-values of the pairwise differences come
from the same distribution and are Holm-adjusted. Each
model's noise-corrected correlation and the human noise ceiling (the
correlation a model whose time were the true per-stimulus difficulty would
reach with these subjects' mean) are shown beside them, in the spirit of
rsatoolbox's model-comparison plot.

Estimand of the correlations and their differences: the correlation between a
model's mean time over this many seeds and the mean RT of this many subjects,
over the population of stimuli, seeds and subjects the data were drawn from
(attenuated by seed and subject noise, as the observed correlation is).
"""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr

from brainres.compare import Comparison, ComparisonResult, match_stimuli
from brainres.comparisons._common import (
    CI_LEVEL, N_RESAMPLES, RELIABILITY_RESAMPLES, SEED, ComparisonError, model_diagnostics, model_measure, per_subject, reliability_warning,
    require_variation,
)
from brainres.settings import Choice, Integer, Mapping, Optional, Real, Text
from brainres.stats import (
    adjust_results, bootstrap_correlation, bootstrap_correlation_difference, disattenuated_correlation,
    split_half_reliability,
)

# The bias-shifted crossed bootstrap reports its centre (r minus the bootstrap bias) as the estimate; it removes
# the attenuation by seed and subject noise to first order only: at 3 seeds x 160 stimuli x 10 subjects it covered
# the noise-free correlation in 82% of simulated studies (docs/statistics.md); the noise-corrected rows are the
# calibrated ones for that estimand. The difference's interval is calibrated (93-97%) for both estimands below.
ESTIMAND = ("the correlation of the model's expected time over infinitely many seeds with the subjects' expected RT "
            "over infinitely many subjects, over the population of stimuli, with the attenuation by seed and subject "
            "noise removed to first order only (under-corrected at few seeds and subjects)")
DIFFERENCE_ESTIMAND = ("the difference between two models' correlations with the subjects' mean RT, over the "
                       "population of stimuli; the interval covers both the noise-free difference (infinitely many "
                       "seeds and subjects) and the difference at the study's numbers of seeds and subjects")


def run(models: dict, trials: xr.Dataset, *, readouts: dict | None = None, readout: str = "expected_halting_step",
        occlusion: float = 0.0, method: str = "spearman", n_resamples: int = 10_000, reliability_resamples: int = 2000,
        n_splits: int = 1000, seed: int = 0, ci_level: float = 0.95) -> ComparisonResult:
    """Compare several models' time with the same human RTs, with paired intervals on their differences.

    Parameters
    ----------
    models : dict of str -> xarray.Dataset
        Model-measures exports (all seeds) on the same stimuli, by model name.
    trials : xarray.Dataset
        Human trials (``rt`` in seconds).
    readouts : dict, optional
        Model name -> readout, for models read out differently; others use ``readout``.
    occlusion, method, n_resamples, reliability_resamples, n_splits, seed, ci_level
        As in ``time-vs-rt``.
    """
    if len(models) < 2:
        raise ComparisonError(f"model-comparison needs at least two models, got {list(models)}")
    readouts = {name: (readouts or {}).get(name, readout) for name in models}
    human_da = per_subject(trials, "rt")
    data_name = trials.attrs.get("dataset_id", "the human data")
    notes, times = [], {}
    for name, measures in models.items():
        time = model_measure(measures, readouts[name], occlusion)
        shared, _ = match_stimuli(time["stimulus_id"].values, human_da["stimulus_id"].values,
                                  model_name=f"model {name!r}", data_name=data_name)
        times[name] = time.sel(stimulus_id=shared)
    ids = [str(s) for s in next(iter(times.values()))["stimulus_id"].values]
    for name, time in times.items():
        if [str(s) for s in time["stimulus_id"].values] != ids:
            raise ComparisonError(f"model {name!r} was exported on other stimuli than {next(iter(times))!r}; "
                                  "models are compared on the same stimuli")
    human = human_da.sel(stimulus_id=ids).values
    matrices = {name: time.values for name, time in times.items()}
    warnings = {}
    for name, matrix in matrices.items():
        require_variation(matrix.mean(axis=0), readouts[name])
        _, model_notes, model_warnings = model_diagnostics(models[name].sel(stimulus_id=ids), matrix, readouts[name],
                                                           occlusion=occlusion)
        notes += [f"{name}: {note}" for note in model_notes + [f"Warning: {w}." for w in model_warnings]]
        warnings[name] = "; ".join(model_warnings)
    reliability = split_half_reliability(human, method=method, n_splits=n_splits, n_resamples=reliability_resamples,
                                         seed=seed, ci_level=ci_level)
    human_warning = reliability_warning(reliability)
    if human_warning:
        notes.append(f"Warning: {human_warning}.")
    ceiling = float(np.sqrt(reliability.estimate)) if reliability.estimate > 0 else float("nan")
    ceiling_low = float(np.sqrt(max(reliability.ci_low, 0)))
    ceiling_high = float(np.sqrt(max(reliability.ci_high, 0)))
    common = dict(method=method, n_resamples=n_resamples, seed=seed, ci_level=ci_level)
    results, correlations = [], []
    for name, matrix in matrices.items():
        correlation = bootstrap_correlation(matrix, human, **common)
        correlations.append(correlation)
        results.append(correlation.replace(extra={
            **correlation.extra, "label": f"{name} ({readouts[name].replace('_', ' ')}) vs human RT", "model": name,
            "ceiling": ceiling, "estimand": ESTIMAND}))
        corrected = disattenuated_correlation(matrix, human, method=method, n_splits=n_splits,
                                              n_resamples=reliability_resamples, seed=seed, ci_level=ci_level)
        # the headline per model: its interval covers the noise-free correlation at small designs
        # (docs/statistics.md); the correlation above is attenuated by seed and subject noise
        results.append(corrected.replace(extra={
            **corrected.extra, "label": f"{name}: noise-corrected correlation", "model": name, "headline": True,
            "warning": "; ".join(w for w in (warnings[name], human_warning) if w)}))
    differences = []
    for first, second in itertools.combinations(matrices, 2):
        difference = bootstrap_correlation_difference(matrices[first], matrices[second], human, **common)
        differences.append(difference.replace(extra={
            **difference.extra, "label": f"{first} minus {second}", "model": first, "reference": second,
            "estimand": DIFFERENCE_ESTIMAND, "headline": True,
            "warning": "; ".join(f"{m}: {warnings[m]}" for m in (first, second) if warnings[m])}))
    results += adjust_results(differences, method="holm") if len(differences) > 1 else differences
    results.append(reliability.replace(extra={**reliability.extra, "label": "human split-half reliability (the "
                                                                             "noise ceiling is its square root)"}))
    names = list(matrices)
    figure = xr.Dataset(
        {"y": ("model", [r.estimate for r in correlations]), "y_low": ("model", [r.ci_low for r in correlations]),
         "y_high": ("model", [r.ci_high for r in correlations])},
        coords={"model": names},
        attrs={"figure": "bars", "title": f"model time vs human RT ({data_name})", "x_label": "model",
               "y_label": f"{method} correlation with mean RT", "ceiling_low": ceiling_low,
               "ceiling_high": ceiling_high,
               "caption": f"Bars: each model's correlation; whiskers: its {ci_level:.0%} bootstrap interval "
                          f"({n_resamples:,} crossed resamples of stimuli, subjects and seeds, seed {seed}); gray "
                          "band: the noise ceiling (square root of the human split-half reliability, its "
                          "interval)."})
    methods = (f"model-comparison: for each of {len(names)} models ({', '.join(names)}) the per-stimulus time "
               f"({', '.join(f'{n}: {readouts[n]}' for n in names)}) at occlusion {occlusion:g}, averaged over the "
               f"model's seeds, was correlated ({method}) with the mean RT of {human.shape[0]} subjects over "
               f"{len(ids)} stimuli. Each correlation, and each pairwise difference, has a crossed bootstrap "
               f"interval ({n_resamples:,} resamples, seed {seed}; a difference resamples the stimuli and subjects "
               "once for both models and each model's seeds separately), with the dual variance correction and the "
               "percentile interval shifted by twice the bootstrap bias; differences' p-values are two-sided, "
               "from the same shifted distribution, "
               + (f"Holm-adjusted over the {len(differences)} pairs. " if len(differences) > 1 else "unadjusted (one "
                  "pair). ")
               + "A model's correlation is the bootstrap's bias-corrected value (its interval's centre); a difference is "
               "the observed difference of the two correlations. Each model's "
               "noise-corrected correlation estimates the correlation of the noise-free stimulus effects (variance "
               f"components; {reliability_resamples:,} stimulus resamples; docs/statistics.md). Noise ceiling: "
               f"split-half reliability of the mean RT over {reliability.extra.get('n_splits', n_splits)} "
               f"{'(all distinct)' if reliability.extra.get('exhaustive_splits') else 'random'} splits of the "
               f"subjects, stepped up to all subjects ({reliability_resamples:,} stimulus resamples).")
    return ComparisonResult(comparison="model-comparison", title=f"Which model's time is closest to human RT "
                                                                 f"({data_name})?",
                            results=results, figures={"models": figure}, methods=methods, notes=notes,
                            inputs={"models": names, "n_stimuli": len(ids), "n_subjects": int(human.shape[0]),
                                    "readouts": readouts, "data": data_name})


COMPARISON = Comparison(
    id="model-comparison", description="several models' time against the same human RTs, with paired intervals",
    run=run, model_kinds=("multi",),
    options={"readouts": Optional(Mapping()), "readout": Text(), "occlusion": Real(low=0, high=1),
             "method": Choice("spearman", "pearson"), "n_resamples": N_RESAMPLES,
             "reliability_resamples": RELIABILITY_RESAMPLES, "n_splits": Integer(low=1),
             "seed": SEED, "ci_level": CI_LEVEL})
