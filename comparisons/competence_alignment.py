"""``competence-alignment``: does the model-human correlation change as the model learns the task?

The same seeds are exported after several training epochs (a pipeline's
``[[export]] epochs``). At each epoch the model's competence is its held-out
accuracy (mean over seeds, Student t over seeds: these stimuli, new seeds), and
its alignment is the correlation of its noise-free per-stimulus time with the
human measure (``latent_correlation``: variance components remove the noise of
the seeds' and subjects' means; percentile stimulus bootstrap). Every earlier
epoch is compared with the last by the difference of the two latent
correlations, from one stimulus bootstrap for both (the seeds' noise they share
stimulus by stimulus is kept; Holm-adjusted). Calibrated in
``docs/experiments/calibrate_paired_epochs.py`` (docs/statistics.md).

Estimand of each correlation: the correlation of the model's expected time at
that epoch (infinitely many seeds) with the humans' expected measure, over the
population of stimuli. Label measures (one value per stimulus from all its
annotators) count as noise-free on the human side, so there the correlations
are for these annotators' measure, attenuated by its noise equally at every
epoch (the noise ceiling is the square root of its reliability).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from brainres.compare import Comparison, ComparisonResult
from brainres.comparisons._common import (
    COMMON_OPTIONS, OCCLUSION, READOUT, RELIABILITY_RESAMPLES, ComparisonError, fmt, model_diagnostics, model_measure, readout_required,
    reliability_warning, require_variation,
)
from brainres.comparisons._human_measures import (
    MEASURES, human_reliability, pearson_on_labels_note, reliability_label, reliability_sentence,
)
from brainres.comparisons._per_stimulus import match_human
from brainres.settings import Boolean, Choice, Integer
from brainres.stats import adjust_results, seed_summary
from brainres.stats.latent import latent_correlation, latent_correlation_difference
from brainres.stats.sparse import is_sparse_human

ESTIMAND = {True: "the correlation of the model's expected time at this training epoch (infinitely many seeds) with "
                  "the humans' expected measure (infinitely many subjects), over the population of stimuli",
            False: "the correlation of the model's expected time at this training epoch (infinitely many seeds) with "
                   "this measure of all the stimulus's annotators, over the population of stimuli (attenuated by the "
                   "annotators' noise, equally at every epoch)"}
INTERVAL_WORDS = {"bca": "BCa", "percentile": "percentile"}  # the methods text names the interval that ran
DIFFERENCE_ESTIMAND = "the change of that correlation between two training epochs, over the population of stimuli"


def _epochs(model: xr.Dataset) -> list[int]:
    if "variant" not in model.dims or "training_epoch" not in model.coords:
        raise ComparisonError("competence-alignment reads a model at several training epochs (dimension 'variant' "
                              "with coordinate 'training_epoch'); in a pipeline, give its [[export]] epochs = [...]")
    epochs = [int(e) for e in model["training_epoch"].values]
    if len(set(epochs)) != len(epochs) or len(epochs) < 2:
        raise ComparisonError(f"competence-alignment needs at least two distinct training epochs, got {epochs}")
    return epochs


def run(
    model: xr.Dataset,
    trials: xr.Dataset,
    *,
    readout: str = "expected_halting_step",
    measure: str = "rt",
    occlusion: float = 0.0,
    method: str = "spearman",
    correct_only: bool = False,
    n_resamples: int = 10_000,
    reliability_resamples: int = 2000,
    n_splits: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
    intersect: bool = False,
) -> ComparisonResult:
    """Held-out accuracy and the model-human correlation at each training epoch, and how the correlation changed.

    Parameters
    ----------
    model : xarray.Dataset
        Model measures over ``variant`` (one per training epoch, coordinate
        ``training_epoch``), each with dims ``seed``, ``stimulus_id``, ``occlusion``.
    trials : xarray.Dataset
        Human trials, or human label counts (``measure = "label_entropy"``).
    readout, measure, occlusion, method, correct_only, n_resamples, reliability_resamples, n_splits, seed, ci_level, intersect
        As in ``time-vs-rt`` (``reliability_resamples``: of the noise ceiling only; the correlations use
        ``n_resamples``).

    Returns
    -------
    ComparisonResult
        Per epoch: the accuracy (Student t over seeds) and the correlation
        (two-factor bootstrap over seeds and stimuli); per earlier epoch: the
        change to the last epoch (paired bootstrap, Holm-adjusted); the human
        split-half reliability (the ceiling, once). Figure: correlation against
        accuracy, one point per epoch, in training order.
    """
    epochs = _epochs(model)
    order = np.argsort(epochs)
    epochs = [epochs[i] for i in order]
    variants = [model.isel(variant=int(i)) for i in order]
    first_time = model_measure(variants[0], readout, occlusion)
    if "trial" in trials.dims and is_sparse_human(match_human(trials, variants[0], first_time["stimulus_id"].values,
                                                              measure=measure, intersect=True).matrix):
        raise ComparisonError("competence-alignment needs dense human data (every subject's value per stimulus); "
                              "sparse crowd-sourced trials have no variance-components estimate here")
    human = match_human(trials, variants[0], first_time["stimulus_id"].values, measure=measure, correct_only=correct_only,
                        intersect=intersect)
    name, shared = human.measured.name, human.stimulus_id
    has_subjects = human.measured.has_subjects
    human_matrix = np.asarray(human.matrix, dtype=float)
    common = {"method": method, "ci_level": ci_level}

    results, notes, times, accuracy_rows, correlation_rows = [], list(human.notes), [], [], []
    warnings_at, undefined = {}, {}
    for epoch, measures in zip(epochs, variants):
        time = model_measure(measures, readout, occlusion).sel(stimulus_id=shared).values
        require_variation(time.mean(axis=0), f"{readout} at epoch {epoch}", n_steps=measures.sizes.get("step"))
        numbers, _, warnings = model_diagnostics(measures, time, readout, occlusion=occlusion)
        if "accuracy_by_seed" not in numbers:
            raise ComparisonError("competence-alignment needs the model's answers (variable 'correct') to measure "
                                  "its accuracy")
        where = f"epoch {epoch}"
        accuracy = seed_summary(numbers["accuracy_by_seed"], statistic="accuracy", ci_level=ci_level,
                                null=numbers["chance"],
                                extra={"label": f"{where}: held-out accuracy", "training_epoch": epoch,
                                       "chance": numbers["chance"]})
        # an accuracy lies in [0, 1]: so does its interval (clipping keeps the t interval's coverage)
        accuracy = accuracy.replace(ci_low=max(accuracy.ci_low, 0.0), ci_high=min(accuracy.ci_high, 1.0))
        correlation = latent_correlation(time, human_matrix, n_resamples=n_resamples, seed=seed, **common)
        if correlation.extra.get("not_estimable") or not correlation.extra.get("reliability_model", 0) > 0:
            # no stimulus variance beyond the noise (in the seed-mean time, or in the humans' mean): the noise-free
            # correlation is not defined (it would sit at a bound, +-1), and neither is a change to or from it
            undefined[epoch] = (f"the noise-free correlation at epoch {epoch} is not defined: "
                                + correlation.extra.get("not_estimable", "the seed-mean time has no stimulus variance "
                                                                         "beyond its seed noise"))
            correlation = correlation.replace(estimate=float("nan"), ci_low=float("nan"), ci_high=float("nan"))
            warnings = [*warnings, undefined[epoch].split(": ", 1)[1]]
        correlation = correlation.replace(extra={
            **correlation.extra, "label": f"{where}: model time vs {name} (noise-free)", "training_epoch": epoch,
            "estimand": ESTIMAND[has_subjects], **({"warning": "; ".join(warnings)} if warnings else {})})
        warnings_at[epoch] = [f"epoch {epoch}: {w}" for w in warnings]
        for warning in warnings:
            notes.append(f"Warning at epoch {epoch}: {warning}.")
        accuracy_rows.append(accuracy)
        correlation_rows.append(correlation)
        times.append(time)
        results += [accuracy, correlation]

    reliability = human_reliability(human.measured, method=method, n_splits=n_splits,
                                    n_resamples=reliability_resamples, seed=seed, ci_level=ci_level)
    human_warning = reliability_warning(reliability)
    changes = []
    for epoch, time in zip(epochs[:-1], times[:-1]):
        change = latent_correlation_difference(times[-1], time, human_matrix, n_resamples=n_resamples, seed=seed,
                                               **common)
        reason = undefined.get(epoch) or undefined.get(epochs[-1])
        if reason:
            change = change.replace(estimate=float("nan"), ci_low=float("nan"), ci_high=float("nan"),
                                    p_value=float("nan"))
        changes.append(change.replace(extra={
            **change.extra, "label": f"change of the correlation from epoch {epoch} to epoch {epochs[-1]}",
            "training_epoch": epoch, "estimand": DIFFERENCE_ESTIMAND,
            # diagnostics of both epochs (and of the human data) beside the difference of their correlations
            **({"warning": "; ".join(shown)} if (shown := [*warnings_at[epoch], *warnings_at[epochs[-1]],
                                                         *([human_warning] if human_warning else [])]) else {})}))
    defined = [i for i, change in enumerate(changes) if change.p_value == change.p_value]
    if len(defined) > 1:  # Holm over the changes that exist
        for i, adjusted in zip(defined, adjust_results([changes[i] for i in defined], method="holm")):
            changes[i] = adjusted
    # the finding: from the first kept epoch (whose correlation is defined) to the last, did the correlation change
    # as accuracy rose?
    first = next((i for i, change in enumerate(changes) if change.estimate == change.estimate), 0)
    changes[first] = changes[first].replace(extra={**changes[first].extra, "headline": True})
    results += changes

    results.append(reliability.replace(extra={**reliability.extra,
                                              "label": reliability_label(human.measured)}))
    if human_warning:
        notes.append(f"Warning: {human_warning}.")
    notes += pearson_on_labels_note(human.measured, method)
    # noise-free correlations reach 1 at most; with a label measure the humans' side keeps its noise
    ceiling = float(np.sqrt(reliability.estimate)) if reliability.estimate > 0 and not has_subjects else float("nan")
    low, high = (float(np.sqrt(max(v, 0.0))) for v in (reliability.ci_low, reliability.ci_high))

    figure = xr.Dataset(
        {"x": ("point", [r.estimate for r in accuracy_rows]), "y": ("point", [r.estimate for r in correlation_rows]),
         "x_low": ("point", [r.ci_low for r in accuracy_rows]), "x_high": ("point", [r.ci_high for r in accuracy_rows]),
         "y_low": ("point", [r.ci_low for r in correlation_rows]),
         "y_high": ("point", [r.ci_high for r in correlation_rows]),
         "point_label": ("point", [f"epoch {e}" for e in epochs])},
        coords={"training_epoch": ("point", epochs)},
        attrs={"figure": "path", "title": f"competence against alignment: accuracy and model time vs {name}",
               "x_label": f"held-out accuracy (mean over {len(times[-1])} seeds; bars: {ci_level:.0%} t interval)",
               "y_label": f"noise-free {method} r",
               "chance": accuracy_rows[0].extra["chance"],
               **({"ceiling_low": low, "ceiling_high": high} if ceiling == ceiling else {}),
               "annotation": f"change from epoch {epochs[first]} to {epochs[-1]}: {fmt(changes[first].estimate)} "
                             f"[{fmt(changes[first].ci_low)}, {fmt(changes[first].ci_high)}]",
               "caption": "One point per training epoch, joined in training order. Vertical bars: the interval of "
                          "the noise-free correlation (variance components, stimulus bootstrap); horizontal bars: the "
                          "accuracy's t interval over seeds; dashed line: chance"
                          + ("." if has_subjects else "; grey band: the noise ceiling (square root of the annotators' "
                             "split-half reliability, its interval).")},
    )
    methods = (
        f"competence-alignment: the same {len(times[-1])} seeds were exported after training epochs "
        f"{', '.join(map(str, epochs))} on {len(shared)} stimuli. At each epoch, the held-out accuracy (answer at "
        f"the halting step, occlusion {occlusion}) was averaged over seeds with a Student t interval "
        f"({ci_level:.0%}), and the model's {readout.replace('_', ' ')} was correlated with {name} ({method}) as "
        "the correlation of noise-free stimulus effects (variance components of an additive unit + stimulus fit on "
        "each side" + ("" if has_subjects else "; the label measure of all annotators taken as it is") + f"; "
        f"{INTERVAL_WORDS.get(correlation_rows[-1].interval, correlation_rows[-1].interval)} stimulus bootstrap, "
        f"{n_resamples:,} resamples, seed {seed}). The change from each earlier "
        f"epoch to epoch {epochs[-1]} is the difference of the two, from one stimulus bootstrap for both (p-value: "
        "twice the smaller tail of the bootstrap distribution), Holm-adjusted"
        + (f" over {len(changes)} differences" if len(changes) > 1 else "")
        + ". Noise ceiling (the same at every epoch): " + reliability_sentence(human.measured, reliability, n_splits)
        + f" ({reliability_resamples:,} stimulus resamples); the ceiling is its square root."
    )
    return ComparisonResult(
        comparison="competence-alignment",
        title=f"Competence against alignment: accuracy and model time vs {name} across training "
              f"({trials.attrs.get('dataset_id', '')})",
        results=results, figures={"competence_alignment": figure}, methods=methods, notes=notes,
        inputs={"n_stimuli": int(len(shared)), "n_seeds": int(len(times[-1])), "training_epochs": epochs,
                "readout": readout, "measure": measure},
    )


COMPARISON = Comparison(
    id="competence-alignment",
    description="held-out accuracy and model time vs a human measure at several training epochs of the same seeds",
    run=run, requires=lambda options: (*readout_required(options), "correct"), data_kind=("human_trials", "human_labels"),
    across_training=True,
    options={"readout": READOUT, "measure": Choice(*MEASURES), "occlusion": OCCLUSION,
             "method": Choice("spearman", "pearson"), "correct_only": Boolean(), "n_splits": Integer(low=1),
             "reliability_resamples": RELIABILITY_RESAMPLES, **COMMON_OPTIONS},
)
