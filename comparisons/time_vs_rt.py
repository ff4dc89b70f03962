"""``time-vs-rt``: does the model take longer where people take longer?

Per-stimulus model time (a readout of the export, averaged over seeds) is
correlated with per-stimulus mean human reaction time (averaged over subjects).
The correlation of the means gets the analytic interval (Fisher z, with its
p-value) and a two-factor bootstrap over model seeds and stimuli (for
infinitely many seeds). The human data's split-half reliability gives the
noise ceiling; the noise-corrected correlation (of the noise-free stimulus
effects, from variance components) is the headline. A linear mixed model of trial-level log RT on
the (standardised) model time with crossed random intercepts for subjects and
stimuli and random slopes by subject tests the same relation trial by trial
(t interval with Satterthwaite's df).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from brainres.compare import Comparison, ComparisonResult
from brainres.stats import (
    bootstrap_correlation,
    correlate,
    mixed_model_results,
    partial_correlation,
    rt_mixed_model,
)
from brainres.comparisons._common import (
    COMMON_OPTIONS, OCCLUSION, READOUT, RELIABILITY_RESAMPLES, ComparisonError, fmt, model_measure,
    readout_required, require_variation,
)
from brainres.comparisons._common import model_diagnostics, reliability_warning
from brainres.comparisons._human_measures import (
    MEASURES, UNITS, pearson_on_labels_note, reliability_and_correction, reliability_label, reliability_sentence,
)
from brainres.comparisons._per_stimulus import match_human
from brainres.settings import Boolean, Choice, Integer
from brainres.stats.mixed import DF_METHOD_WORDS
from brainres.stats.sparse import human_cells, sparsity, stimulus_means



def run(
    model: xr.Dataset,
    trials: xr.Dataset,
    *,
    readout: str = "expected_halting_step",
    measure: str = "rt",
    occlusion: float = 0.0,
    method: str = "spearman",
    correct_only: bool = False,
    control_accuracy: bool = False,
    mixed_model: bool = True,
    n_resamples: int = 10_000,
    reliability_resamples: int = 2000,
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
    measure : {"rt", "accuracy", "label_entropy"}
        The per-stimulus human measure (``comparisons/_human_measures.py``):
        mean reaction time or accuracy over subjects (human trials), or the
        entropy of the label distribution (human label counts, e.g. cifar10h;
        its ceiling comes from disjoint subsets of each stimulus's annotators).
    occlusion : float
        The export's occlusion level to use (humans saw unoccluded images).
    method : {"spearman", "pearson"}
    correct_only : bool
        Use only trials the subject answered correctly.
    control_accuracy : bool
        Add the partial correlation controlling for per-stimulus human accuracy.
    mixed_model : bool
        Fit the trial-level mixed model, ``log rt ~ model_time_z + (1 + model_time_z | subject) + (1 | stimulus)``
        (``rt_mixed_model``'s defaults; t interval with Satterthwaite's df). On sparse designs with thousands of
        subjects it costs minutes (``docs/benchmarks.md``); ``False`` skips it.
    n_resamples, n_splits, seed, ci_level
        Bootstrap resamples, split-half splits, the seed of every draw, interval level.
    reliability_resamples : int
        Resamples of the stimulus bootstraps of the noise ceiling and the
        noise-corrected correlation (their split-half versions recompute 100
        splits per resample, hence a smaller default than ``n_resamples``).
    intersect : bool
        Use the stimuli common to both sides instead of failing on a mismatch.
    """
    if method not in ("spearman", "pearson"):
        raise ComparisonError(f"method must be 'spearman' or 'pearson', got {method!r}")
    if measure != "rt" and control_accuracy:
        raise ComparisonError("control_accuracy applies to measure 'rt' only")
    time = model_measure(model, readout, occlusion)
    human = match_human(trials, model, time["stimulus_id"].values, measure=measure, correct_only=correct_only,
                        intersect=intersect)
    measured, shared, notes, by_subject = human.measured, human.stimulus_id, human.notes, human.by_subject
    name = measured.name
    model_matrix, human_matrix = time.sel(stimulus_id=shared).values, human.matrix
    model_mean, human_mean = model_matrix.mean(axis=0), stimulus_means(human_matrix)
    require_variation(model_mean, readout, n_steps=model.sizes.get("step"))
    # diagnostics before inference: shown next to the estimates (notes, and a warning on the headline rows)
    diagnostics, diagnostic_notes, warnings = model_diagnostics(model, model_matrix, readout, occlusion=occlusion)
    notes = [*notes, *diagnostic_notes]
    common = {"method": method, "ci_level": ci_level}

    results = []
    analytic = correlate(model_mean, human_mean, **common)
    results.append(analytic.replace(extra={**analytic.extra, "label": f"model time vs {name} (analytic CI)"}))
    # No seed x stimulus x subject bootstrap row: its first-order bias shift covered the noise-free correlation in
    # only 82% of simulated studies at 3 seeds x 160 stimuli x 10 subjects (docs/statistics.md, calibration); the
    # noise-corrected correlation is the calibrated interval for that estimand.
    for factors, label in ((("seed", "stimulus"), "two-factor bootstrap (seeds x stimuli)"),):
        factors = tuple(f for f in factors if f != "seed" or model_matrix.shape[0] > 1)
        boot = bootstrap_correlation(model_matrix, human_matrix, resample=factors, n_resamples=n_resamples,
                                     seed=seed, **common)
        results.append(boot.replace(extra={**boot.extra, "label": f"model time vs {name}, {label}"}))
    reliability, corrected = reliability_and_correction(
        measured, model_matrix, method=method, n_splits=n_splits, n_resamples=reliability_resamples,
        seed=seed, ci_level=ci_level)
    results.append(reliability.replace(extra={**reliability.extra,
                                              "label": reliability_label(measured)}))
    # the row label stays the same for every measure (the section's heading names the measure)
    results.append(corrected.replace(extra={**corrected.extra, "label": "noise-corrected correlation"}))
    if control_accuracy:
        accuracy = by_subject(trials, "correct").sel(stimulus_id=shared).values
        partial = partial_correlation(model_mean, human_mean, stimulus_means(accuracy), **common)
        results.append(partial.replace(extra={
            **partial.extra, "label": "partial correlation controlling for human accuracy",
            "estimand": f"the {method} partial correlation of the {model_matrix.shape[0]}-seed mean with these subjects' "
                        f"mean {name} given their mean accuracy, over the population of stimuli (attenuated by the "
                        "noise in the means; it controls for the measured accuracy, not for difficulty itself)"}))
    mixed_table = None
    if mixed_model and measure == "rt":
        standardised = (model_mean - model_mean.mean()) / model_mean.std()
        model_time_z = xr.DataArray(standardised, dims="stimulus_id", coords={"stimulus_id": shared},
                                    name="model_time_z")
        subset = trials.isel(trial=np.isin(trials["stimulus_id"].values.astype(str), shared))
        if correct_only:
            subset = subset.isel(trial=np.asarray(subset["correct"].values, dtype=bool))
        subset = subset.isel(trial=~np.isnan(subset["rt"].values))
        mixed_table = rt_mixed_model(subset, model_time_z, ci_level=ci_level)
        for row in mixed_model_results(mixed_table):
            if "model_time_z" in row.statistic:
                results.append(row.replace(extra={
                    **row.extra, "label": "mixed model: log RT per SD of model time",
                    "estimand": "the mean over the population of subjects of the slope of log RT on the standardised "
                                "seed-mean model time (subjects' slopes may differ; random intercepts for subjects "
                                "and stimuli), given these model seeds"}))

    ceiling = float(np.sqrt(reliability.estimate)) if reliability.estimate > 0 else float("nan")
    if reliability_warning(reliability):
        warnings.append(reliability_warning(reliability))
    notes += [f"Warning: {w}." for w in warnings]
    notes += pearson_on_labels_note(measured, method)
    for index, result in enumerate(results):
        results[index] = result.replace(extra={**result.extra, **({"warning": "; ".join(warnings)} if warnings else {}),
                                               "model_time_range": f"{diagnostics['time_min']:.4g} to "
                                                                   f"{diagnostics['time_max']:.4g}"})
    # the findings the report's summary leads with: the noise-corrected correlation (its interval generalises over
    # seeds, stimuli and subjects)
    for index, result in enumerate(results):
        label = str(result.extra.get("label"))
        if (label.startswith("noise-corrected")
                or (not measured.has_subjects and "two-factor" in label)):
            results[index] = result.replace(extra={**result.extra, "headline": True, "ceiling": ceiling})
    figure = xr.Dataset(
        {
            "x": ("point", model_mean), "y": ("point", human_mean),
            "x_low": ("point", model_matrix.min(axis=0)), "x_high": ("point", model_matrix.max(axis=0)),
        },
        coords={"stimulus_id": ("point", shared)},
        attrs={
            "figure": "scatter", "title": f"{readout.replace('_', ' ')} vs {name}",
            "x_label": f"model {readout.replace('_', ' ')} (mean over {model_matrix.shape[0]} seeds; bars: range)",
            "y_label": f"{name} ({UNITS[measure]})",
            "annotation": f"{method} r = {fmt(analytic.estimate)}, {ci_level:.0%} CI [{fmt(analytic.ci_low)}, "
                          f"{fmt(analytic.ci_high)}]\nnoise-free r = {fmt(corrected.estimate)} "
                          f"[{fmt(corrected.ci_low)}, {fmt(corrected.ci_high)}]\nceiling (sqrt human reliability) = "
                          + (fmt(ceiling) if ceiling == ceiling else "n/a (reliability <= 0)"),
            "caption": "Each point is a stimulus. Red: least-squares line. r: correlation of the means (Fisher z "
                       "interval); noise-free r: the noise-corrected correlation ("
                       + ("variance components" if "noise-free stimulus effects" in corrected.method
                          else "split-half reliabilities" if measured.has_subjects
                          else "reliabilities of annotator subsets and seed halves") + ", stimulus bootstrap), as in "
                       "the table.",
        },
    )
    trial_note = "correct trials only" if correct_only else "all answered trials (missed responses excluded)"
    design = sparsity(human_matrix) if by_subject is human_cells else None
    if measured.has_subjects:
        human_side = f"{name} averaged over {human_matrix.shape[0]} subjects ({trial_note})"
        human_units = f"{human_matrix.shape[0]} subjects"
        resampled = "seeds and stimuli"
    else:
        human_side = (f"{name}: the entropy of each stimulus's label distribution over all its annotators (a median "
                      f"of {measured.n_units}), in units of log {measured.counts.shape[1]}" if measure == "label_entropy"
                      else f"{name}: the share of each stimulus's annotators (a median of {measured.n_units}) who chose "
                           "its category")
        human_units = f"a median of {measured.n_units} annotators"
        resampled = "seeds and stimuli (the annotators differ per stimulus, so they are not a crossed factor)"
    design_note = "" if design is None else (
        f" Sparse design ({design['n_cells']:,} of the subject x stimulus cells observed, a median of "
        f"{design['subjects_per_stimulus_median']:g} subjects per stimulus): a stimulus's mean is over the subjects "
        "who saw it, in resamples over the drawn subjects who saw it, and split halves are halves of the subjects.")
    methods = (
        f"time-vs-rt: per stimulus, the model's {readout.replace('_', ' ')} at occlusion {occlusion} was averaged over "
        f"{model_matrix.shape[0]} seeds and compared with {human_side}; "
        f"{len(shared)} stimuli. {method.capitalize()} correlation of the means with its analytic (Fisher z) "
        f"interval and p-value (it is attenuated by the noise left in a mean of {model_matrix.shape[0]} seeds and "
        f"{human_units}); a crossed bootstrap with {n_resamples:,} resamples (seed {seed}) of "
        f"{resampled}, with the dual-bootstrap variance correction and the "
        "percentile interval shifted by twice the bootstrap bias (the reported estimate is its centre, r minus the "
        "bias: the correlation for infinitely many seeds with this human mean). Noise ceiling: "
        + reliability_sentence(measured, reliability, n_splits)
        + f" ({reliability_resamples:,} stimulus resamples, seed {seed}); the ceiling is its square root. "
        "Noise-corrected correlation: " + corrected.method + "."
        + design_note
        + (f" Mixed model: {mixed_table.attrs.get('formula', '')} fitted by REML "
           f"({mixed_table.attrs.get('engine', '')}), model time standardised over stimuli; "
           + DF_METHOD_WORDS[mixed_table.attrs.get("df_method", "normal")] + "."
           if mixed_table is not None else "")
    )
    return ComparisonResult(
        comparison="time-vs-rt", title=f"Model time vs {name} ({trials.attrs.get('dataset_id', '')})",
        results=results, figures={"scatter": figure}, methods=methods, notes=notes,
        inputs={"n_stimuli": int(len(shared)), "n_seeds": int(model_matrix.shape[0]),
                "n_subjects": int(human_matrix.shape[0]) if measured.has_subjects else 0, "readout": readout,
                "measure": measure},
    )


COMPARISON = Comparison(
    id="time-vs-rt", description="per-stimulus model time vs a human measure (reaction time, accuracy, label entropy)",
    run=run, requires=readout_required, data_kind=("human_trials", "human_labels"),
    options={"readout": READOUT, "measure": Choice(*MEASURES), "occlusion": OCCLUSION,
             "method": Choice("spearman", "pearson"),
             "correct_only": Boolean(), "control_accuracy": Boolean(), "mixed_model": Boolean(),
             "n_splits": Integer(low=1), "reliability_resamples": RELIABILITY_RESAMPLES, **COMMON_OPTIONS},
)
