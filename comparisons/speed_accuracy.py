"""``speed-accuracy``: what the model gains by taking more steps, and how its speed relates to its errors.

Two curves per seed, at the unoccluded level: accuracy when forced to answer
at step t, and accuracy when answering at the first step whose cumulative
halting probability reaches a threshold q, alongside the mean step that costs.
Reported: per seed, the accuracy at the median halting step against chance
(exact binomial test, Clopper-Pearson interval) and the accuracy gained from
step 1 to the last step (bootstrap over stimuli); the difference in model time between stimuli the model gets
wrong and right (seed-mean, bootstrap over stimuli); and the human analogue,
mean RT on error minus correct trials (Student's t over subjects).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from brainres.comparisons._common import (
    COMMON_OPTIONS,
    OCCLUSION,
    READOUT,
    ComparisonError,
    bootstrap_bands,
    fmt,
    model_diagnostics,
    per_subject,
    require_variable,
)
from scipy.stats import binomtest, ttest_1samp

from brainres.compare import Comparison, ComparisonResult, match_stimuli
from brainres.stats import crossed_bootstrap
from brainres.stats.result import StatResult

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)


def run(model: xr.Dataset, data: xr.Dataset, *, readout: str = "expected_halting_step", occlusion: float = 0.0,
        n_resamples: int = 10_000, seed: int = 0, ci_level: float = 0.95, intersect: bool = False) -> ComparisonResult:
    """Speed-accuracy relations of the model (per seed, with bands) and of the humans.

    ``readout`` is the model time set against errors; the accuracy-by-halting-
    threshold curve needs halting probabilities and is left out for a model
    without them.
    """
    for name in ("correct", readout):
        require_variable(model, name)
    if (model["target_class"].values < 0).any() if "target_class" in model else False:
        raise ComparisonError("the export has unscored stimuli (no target class); speed-accuracy needs labels")
    shared, notes = match_stimuli(model["stimulus_id"].values, data["stimulus_id"].values, intersect=intersect,
                                  model_name="the model export", data_name=data.attrs.get("dataset_id", "the data"))
    picked = model.sel(stimulus_id=shared)
    if "occlusion" in picked.dims:
        picked = picked.sel(occlusion=float(occlusion))
    correct = picked["correct"].transpose("seed", "stimulus_id", "step").values.astype(float)  # (seed, stim, step)
    halting = picked["halting_probability"].transpose("seed", "stimulus_id", "step").values \
        if "halting_probability" in picked else None
    time = picked[readout].transpose("seed", "stimulus_id").values
    seeds = [int(s) for s in picked["seed"].values]
    steps = picked["step"].values
    n = len(shared)
    _, diagnostic_notes, warnings = model_diagnostics(
        picked.expand_dims(occlusion=[float(occlusion)]) if "occlusion" not in picked.dims else picked, time, readout,
        occlusion=occlusion)
    notes = [*notes, *diagnostic_notes, *(f"Warning: {w}." for w in warnings)]
    results = []
    for index, model_seed in enumerate(seeds):
        gain = correct[index, :, -1] - correct[index, :, 0]
        results.append(crossed_bootstrap(
            lambda w, gain=gain: w["stimulus"] @ gain, {"stimulus": n}, n_resamples=n_resamples, seed=seed,
            ci_level=ci_level, statistic_name="accuracy_gain", n=n, bounds=(-1, 1),
            extra={"model_seed": model_seed, "label": f"seed {model_seed}: accuracy at step {steps[-1]} minus step 1",
                   "estimand": "this trained seed's accuracy gain from step 1 to the last step, over the population "
                               "of stimuli"}))

    # model time on stimuli the model gets wrong vs right (answer = prediction at the median halting step)
    answered_correct = picked["halted_correct"].transpose("seed", "stimulus_id").values.astype(float) \
        if "halted_correct" in picked else correct[:, :, -1]
    n_classes = picked.sizes.get("class_index")
    if n_classes:
        chance = 1.0 / n_classes
        for index, model_seed in enumerate(seeds):
            hits = int(answered_correct[index].sum())
            test = binomtest(hits, n, chance, alternative="greater")
            # a two-sided interval for the accuracy itself; the p-value asks "above chance?"
            interval = binomtest(hits, n, chance).proportion_ci(confidence_level=ci_level, method="exact")
            results.append(StatResult(
                statistic="accuracy", estimate=hits / n, ci_low=interval.low, ci_high=interval.high,
                ci_level=ci_level, interval="clopper_pearson", p_value=test.pvalue, n=n,
                method=f"exact binomial test against chance ({chance:.4f}), one-sided",
                extra={"model_seed": model_seed, "chance": chance, "headline": True,
                       "estimand": "this trained seed's accuracy over the population of stimuli",
                       **({"warning": "at chance"} if test.pvalue > 0.05 else {}),
                       "label": f"seed {model_seed}: accuracy at the median halting step (vs chance {chance:.3f})"}))
    error_rate = 1 - answered_correct.mean(axis=0)  # per stimulus, over seeds
    seed_mean_time = time.mean(axis=0)
    if np.ptp(seed_mean_time) == 0:
        notes.append(f"Model time ({readout}) does not vary across stimuli (every stimulus "
                     f"{float(seed_mean_time[0]):g}): no error-vs-correct time difference.")
    elif 0 < error_rate.mean() < 1:
        def time_difference(w):
            wrong = w["stimulus"] * error_rate
            right = w["stimulus"] * (1 - error_rate)
            return (wrong @ seed_mean_time) / wrong.sum(axis=1) - (right @ seed_mean_time) / right.sum(axis=1)

        results.append(crossed_bootstrap(
            time_difference, {"stimulus": n}, n_resamples=n_resamples, seed=seed, ci_level=ci_level,
            statistic_name="time_difference", n=n, interval="percentile",
            extra={"label": f"model: {readout.replace('_', ' ')} on errors minus on correct answers (seed-mean)",
                   "estimand": "for the model's mean time over these seeds, the difference between its mean on "
                               "stimuli it gets wrong and right, over the population of stimuli",
                   **({"warning": "; ".join(warnings)} if warnings else {})}))
    else:
        notes.append("The model is right (or wrong) on every stimulus in every seed; no error-vs-correct time difference.")

    rt = per_subject(data, "rt") if "rt" in data else None
    if rt is not None:
        subjects_correct = per_subject(data, "correct").sel(stimulus_id=shared).values
        rt_values = rt.sel(stimulus_id=shared).values
        error_rt = np.nanmean(np.where(subjects_correct < 0.5, rt_values, np.nan), axis=1)
        right_rt = np.nanmean(np.where(subjects_correct >= 0.5, rt_values, np.nan), axis=1)
        difference = error_rt - right_rt
        usable = ~np.isnan(difference)
        if usable.sum() >= 3:
            # a mean over a handful of subjects: Student's t (a percentile bootstrap of 10 subjects is too narrow
            # by sqrt(9/10) and covered 93 %, docs/statistics.md)
            values = difference[usable]
            test = ttest_1samp(values, 0.0)
            interval = test.confidence_interval(ci_level)
            results.append(StatResult(
                statistic="rt_difference", estimate=float(values.mean()), ci_low=float(interval.low),
                ci_high=float(interval.high), ci_level=ci_level, interval="t", p_value=float(test.pvalue),
                n=int(usable.sum()), method=f"one-sample t-test over subjects ({int(usable.sum()) - 1} df)",
                extra={"label": "humans: mean RT on error minus correct trials (s)", "n_unit": "subjects",
                       "estimand": "the mean over the population of subjects of a subject's mean RT on error minus "
                                   "correct trials (these stimuli)"}))

    by_step = correct.mean(axis=1)
    low, high = bootstrap_bands(np.transpose(correct, (0, 2, 1)), seed=seed, ci_level=ci_level)
    accuracy_figure = xr.Dataset(
        {"y": (("series", "x"), by_step), "y_low": (("series", "x"), low), "y_high": (("series", "x"), high)},
        coords={"series": [f"seed {s}" for s in seeds], "x": steps.astype(float)},
        attrs={"figure": "lines", "title": "accuracy when answering at step t", "x_label": "step",
               "y_label": "accuracy", "caption": "Bands: 95% percentile bootstrap over stimuli."})
    figures = {"by_step": accuracy_figure}
    if halting is not None:
        figures["by_threshold"] = _threshold_figure(halting, correct, seeds, seed=seed, ci_level=ci_level)
    else:
        notes.append("The model gives no halting probabilities: no accuracy-by-halting-threshold curve.")
    methods = (
        f"speed-accuracy: on the {n} stimuli of {data.attrs.get('dataset_id', 'the stimulus set')} at occlusion "
        f"{occlusion}, accuracy per step and per halting threshold for {len(seeds)} seeds; intervals from "
        f"{n_resamples:,} bootstrap resamples of stimuli, seed {seed} (human RT difference: Student's t over subjects)."
    )
    return ComparisonResult(comparison="speed-accuracy", title=f"Speed and accuracy ({data.attrs.get('dataset_id', '')})",
                            results=results, figures=figures,
                            methods=methods, notes=notes, inputs={"n_stimuli": n, "n_seeds": len(seeds)})


def _threshold_figure(halting, correct, seeds, *, seed: int, ci_level: float) -> xr.Dataset:
    """Accuracy when answering at the first step whose cumulative halting probability reaches q."""
    cumulative = np.cumsum(halting, axis=2)
    exit_step = np.stack([np.argmax(cumulative >= q - 1e-9, axis=2) for q in THRESHOLDS], axis=1)  # (seed, q, stim)
    exit_correct = np.take_along_axis(np.transpose(correct, (0, 2, 1))[:, None, :, :].repeat(len(THRESHOLDS), 1),
                                      exit_step[:, :, None, :], axis=2)[:, :, 0, :]
    low, high = bootstrap_bands(exit_correct, seed=seed + 1, ci_level=ci_level)
    return xr.Dataset(
        {"y": (("series", "x"), exit_correct.mean(axis=2)), "y_low": (("series", "x"), low),
         "y_high": (("series", "x"), high), "mean_exit_step": (("series", "x"), (exit_step + 1).mean(axis=2))},
        coords={"series": [f"seed {s}" for s in seeds], "x": np.array(THRESHOLDS)},
        attrs={"figure": "lines", "title": "accuracy by halting threshold",
               "x_label": "cumulative halting probability required to answer", "y_label": "accuracy",
               "annotation": "mean exit step at q = 0.1 / 0.5 / 0.99: " + " / ".join(
                   fmt(float((exit_step + 1)[:, THRESHOLDS.index(q)].mean())) for q in (0.1, 0.5, 0.99)),
               "caption": "Answering at the first step whose cumulative halting probability reaches q; "
                          "bands: 95% percentile bootstrap over stimuli."})


COMPARISON = Comparison(id="speed-accuracy", description="accuracy against steps and halting threshold", run=run,
                        requires=lambda options: ("correct", options.get("readout")),
                        options={"readout": READOUT, "occlusion": OCCLUSION, **COMMON_OPTIONS})
