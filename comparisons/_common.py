"""Helpers shared by comparison plug-ins (not a plug-in itself)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from brainres.errors import BrainresError
from brainres.settings import Boolean, Integer, Real, Text

READOUTS = ("expected_halting_step", "median_halting_step", "entropy_threshold_step", "uncertainty_auc")

# Rules of the options most comparisons share (brainres.compare.Comparison.options).
N_RESAMPLES = Integer(low=2)  # the statistics engine needs two resamples at least
SEED = Integer(low=0)
CI_LEVEL = Real(low=0, high=1, low_open=True, high_open=True)
INTERSECT = Boolean()
READOUT = Text()
OCCLUSION = Real(low=0, high=1)
COMMON_OPTIONS = {"n_resamples": N_RESAMPLES, "seed": SEED, "ci_level": CI_LEVEL, "intersect": INTERSECT}
# Resamples of the bootstraps behind the noise ceiling and the noise-corrected correlation. A setting of its own
# (default 2,000) because the split-half ones recompute 100 splits per resample: at CIFAR-10H's 10,000 images
# 10,000 of them would take most of an hour.
RELIABILITY_RESAMPLES = Integer(low=2)


class ComparisonError(BrainresError, ValueError):
    """A comparison's inputs or options do not fit together."""


class NotEstimableError(ComparisonError):
    """The inputs are valid, but the estimate does not exist for them (e.g. a model time that never varies).

    A finding about the data, not a mistake in the pipeline: a pipeline records
    the comparison as "not estimable" with this message and runs the others
    (``brainres.pipeline.engine``); the Python API raises it.
    """

    not_estimable = True  # what the engine looks for (it does not import the plug-ins' helpers)


def available_readouts(model: xr.Dataset) -> list[str]:
    """The model-time readouts an export holds (a model without halting has no halting readouts)."""
    return [r for r in READOUTS if r in model]


def require_variable(model: xr.Dataset, name: str) -> None:
    """Raise a :class:`ComparisonError` that lists what the export has, if it lacks ``name``."""
    if name not in model:
        if name in READOUTS:
            why = (" (the model gives no halting probabilities)" if name in READOUTS[:2]
                   and "halting_probability" not in model else "")
            raise ComparisonError(f"the model export has no readout {name!r}{why}; readouts in this export: "
                                  f"{', '.join(available_readouts(model)) or 'none'} (set the comparison's readout)")
        available = [v for v in model.data_vars if {"seed", "stimulus_id"} <= set(model[v].dims)]
        raise ComparisonError(f"the model export has no variable {name!r}; per-stimulus variables: {available}")


def _ids(values, limit: int = 8) -> str:
    values = [str(v) for v in values]
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f" (and {len(values) - limit} more)" if len(values) > limit else "")


def require_finite(model: xr.Dataset, name: str) -> None:
    """Raise a :class:`ComparisonError` naming the stimuli (by id) where a per-stimulus variable is NaN or infinite."""
    values = model[name]
    if "stimulus_id" not in values.dims or values.dtype.kind not in "fc":
        return
    others = [d for d in values.dims if d != "stimulus_id"]
    not_finite = ~np.isfinite(values)
    per_stimulus = np.asarray((not_finite.any(others) if others else not_finite).values, dtype=bool)
    if not per_stimulus.any():
        return
    ids = np.asarray(model["stimulus_id"].values).astype(str)
    infinite = int(np.asarray(np.isinf(values).sum().values))
    kind = "NaN" if not infinite else ("infinite" if infinite == int(np.asarray(not_finite.sum().values)) else
                                       "NaN or infinite")
    if per_stimulus.all() and bool(np.asarray(not_finite.all().values)):
        raise ComparisonError(f"the model export's {name!r} is {kind} everywhere (all {ids.size} stimuli): it holds "
                              "no usable value; did the model diverge in training (NaN weights), or is this "
                              "column empty?")
    seeds = ""
    if "seed" in values.dims:
        rest = [d for d in others if d != "seed"]
        by_seed = np.asarray((not_finite.any(rest) if rest else not_finite).any("stimulus_id").values, dtype=bool)
        seeds = f" (seed {', '.join(str(s) for s in np.asarray(model['seed'].values)[by_seed])})"
    raise ComparisonError(f"the model export's {name!r} is {kind} for {int(per_stimulus.sum())} of {ids.size} stimuli: "
                          f"{_ids(ids[per_stimulus])}{seeds}; a comparison needs a finite value for every stimulus "
                          "(fix the model's measure, or leave those stimuli out of the export)")


def model_measure(model: xr.Dataset, name: str, occlusion: float | None = 0.0) -> xr.DataArray:
    """A per-stimulus model measure as ``(seed, stimulus_id)``, at one occlusion level."""
    require_variable(model, name)
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


def require_variation(values: np.ndarray, readout: str, *, n_steps: int | None = None) -> None:
    """A model time that is the same for every stimulus cannot be correlated with anything: say so.

    ``values`` are per-stimulus (seed means); ``n_steps`` the model's last step.
    """
    finite = values[np.isfinite(values)]
    if finite.size and np.ptp(finite) > 0:
        return
    value = float(finite[0]) if finite.size else float("nan")
    hint = ""
    if n_steps is not None and value == n_steps:
        hint = " Every stimulus is at the last step"
        if readout in ("expected_halting_step", "median_halting_step"):
            hint += ": the model's halting probability is all on its last step, for every image."
        elif readout == "entropy_threshold_step":
            hint += (": the model never becomes sure enough (its entropy never falls below the threshold; is it "
                     "above chance?).")
        else:
            hint += "."
    elif value == 1:
        hint = " Every stimulus is at the first step."
    raise NotEstimableError(f"model time ({readout}) does not vary across the {values.size} stimuli: every stimulus "
                            f"has {value:g}, so it cannot be compared with human data.{hint}")


def model_diagnostics(model: xr.Dataset, time: np.ndarray, readout: str, *, occlusion: float | None = 0.0,
                      alpha: float = 0.05) -> tuple[dict, list[str], list[str]]:
    """Checks of the model side before inference: is the model above chance, does its time vary?

    Parameters
    ----------
    model : xarray.Dataset
        The export (for per-seed answers, the number of classes and the steps).
    time : numpy.ndarray, shape (n_seeds, n_stimuli)
        The model time used, on the compared stimuli.
    readout : str
    occlusion : float, optional
        The export's occlusion level the time comes from.

    Returns
    -------
    (numbers, notes, warnings)
        ``numbers``: named diagnostics for results' ``extra`` (accuracy per
        seed and chance, exact one-sided binomial p-values, the spread of the
        seed-mean time across stimuli and the share of stimuli at the first
        and last step); ``notes``: the same in sentences; ``warnings``: what
        makes an estimate untrustworthy (a model at chance, a time that barely
        varies).
    """
    from scipy.stats import binomtest

    numbers, notes, warnings = {}, [], []
    seed_mean = np.asarray(time, float).mean(axis=0)
    numbers.update(time_min=float(seed_mean.min()), time_max=float(seed_mean.max()),
                   time_sd=float(seed_mean.std(ddof=1)) if seed_mean.size > 1 else float("nan"))
    spread = f"model time ({readout}, mean over seeds) ranges from {seed_mean.min():.4g} to {seed_mean.max():.4g}"
    if "step" in model.coords and readout.endswith("_step"):
        first, last = float(model["step"].values.min()), float(model["step"].values.max())
        at_first = float(np.mean(np.isclose(time, first)))
        at_last = float(np.mean(np.isclose(time, last)))
        numbers.update(share_at_first_step=at_first, share_at_last_step=at_last)
        spread += (f" steps (of {first:g} to {last:g}); {at_first:.0%} of seed x stimulus values at the first step, "
                   f"{at_last:.0%} at the last")
        if readout == "expected_halting_step" and "median_halting_step" in model:
            # an expected step is rarely exactly at a bound; where the model halts is its median step
            median = model["median_halting_step"]
            if "occlusion" in median.dims:
                median = median.sel(occlusion=float(occlusion or 0.0))
            median = median.values
            median_first, median_last = float(np.mean(median <= first)), float(np.mean(median >= last))
            numbers.update(share_median_at_first_step=median_first, share_median_at_last_step=median_last)
            spread += (f"; the median halting step is at the first step for {median_first:.0%} and at the last for "
                       f"{median_last:.0%} of seed x stimulus pairs (all exported stimuli)")
            if median_last > 0.5:
                warnings.append(f"model time is pinned at its bound: the median halting step is the last step for "
                                f"{median_last:.0%} of seed x stimulus pairs, so it can rank only the rest")
        if np.ptp(seed_mean) < 0.05 * max(last - first, 1):
            warnings.append(f"model time barely varies across stimuli ({seed_mean.min():.4g} to {seed_mean.max():.4g} "
                            f"steps, less than 5% of the step range): a correlation with it says little")
    notes.append(spread + ".")
    agreement = seed_agreement(time)
    if agreement is not None:
        # on the values and on each seed's ranks (the scale of the Spearman rows): one seed with a wide spread can
        # make the values agree while the ranks do not
        agreement_ranks = seed_agreement(time, ranks=True)
        numbers.update(seed_agreement=agreement, seed_agreement_ranks=agreement_ranks)
        notes.append(f"Agreement of the {len(time)} seeds on which stimuli take longer: Cronbach's alpha of the "
                     f"seed-mean time {agreement:.2f} on the values, {agreement_ranks:.2f} on each seed's ranks "
                     "(1 - residual / stimulus mean square of a seed + stimulus fit).")
        worst, scale = min((agreement, "values"), (agreement_ranks, "ranks"))
        if not worst > 0:
            warnings.append(f"the seeds do not agree on which stimuli take longer (Cronbach's alpha of the seed-mean "
                            f"time on the {scale} {worst:.2f} <= 0): the seed-mean time has no stimulus variance "
                            "beyond its seed noise, so a correlation with it reflects noise, and a noise-corrected "
                            "one is not defined (shown as n/a)")
    answered = None
    for name in ("halted_correct", "correct"):
        if name in model:
            answered = model[name]
            break
    n_classes = model.sizes.get("class_index")
    if answered is not None and n_classes and "stimulus_id" in answered.dims and "seed" in answered.dims:
        ids = [str(s) for s in np.asarray(model["stimulus_id"].values)]
        if "occlusion" in answered.dims:
            answered = answered.sel(occlusion=float(occlusion or 0.0))
        if "step" in answered.dims:
            answered = answered.isel(step=-1)
        answered = answered.transpose("seed", "stimulus_id").values.astype(bool)
        chance = 1.0 / n_classes
        accuracies, p_values = [], []
        for row in answered:
            test = binomtest(int(row.sum()), row.size, chance, alternative="greater")
            accuracies.append(float(row.mean()))
            p_values.append(float(test.pvalue))
        numbers.update(accuracy_by_seed=accuracies, chance=chance, accuracy_p_by_seed=p_values)
        seeds = [str(s) for s in np.asarray(model["seed"].values)]
        notes.append("Model accuracy by seed (answer at the halting step, all " + f"{len(ids)} exported stimuli): "
                     + ", ".join(f"seed {s}: {a:.3f} (p = {p:.2g})" for s, a, p in zip(seeds, accuracies, p_values))
                     + f" against chance {chance:.4f} (exact one-sided binomial test).")
        at_chance = [s for s, p in zip(seeds, p_values) if p > alpha]
        if at_chance:
            # first: it makes every other number moot
            warnings.insert(0, f"model at chance: accuracy of seed(s) {', '.join(at_chance)} is not above chance "
                               f"({chance:.4f}; exact binomial p > {alpha:g}); its time is not the time of a model "
                               "that recognises the images")
    return numbers, notes, warnings


def seed_agreement(time, *, ranks: bool = False) -> float | None:
    """Cronbach's alpha of a (seed, stimulus) time: the reliability of its seed mean across stimuli.

    ``1 - MS_residual / MS_stimulus`` of the additive seed + stimulus layout
    (Hoyt's form, equal to pingouin's ``cronbach_alpha`` with seeds as items);
    with ``ranks``, of each seed's mid-ranks over the stimuli (then equal to
    the model reliability of ``latent_correlation(method="spearman")``).
    None with fewer than two seeds or three stimuli, or a time constant across
    stimuli (nothing to agree on).

    >>> import numpy as np
    >>> round(seed_agreement(np.array([[1.0, 2.0, 3.0, 4.0], [1.5, 2.5, 2.5, 4.5]])), 3)
    0.96
    """
    time = np.asarray(time, dtype=float)
    if time.ndim != 2 or time.shape[0] < 2 or time.shape[1] < 3 or not np.isfinite(time).all():
        return None
    if ranks:
        from scipy.stats import rankdata

        time = rankdata(time, axis=1)
    n_seeds, n_stimuli = time.shape
    stimulus_means = time.mean(axis=0)
    residual = time - time.mean(axis=1, keepdims=True) - stimulus_means[None, :] + time.mean()
    between = n_seeds * stimulus_means.var(ddof=1)
    if not between > 0:
        return None
    within = (residual**2).sum() / ((n_seeds - 1) * (n_stimuli - 1))
    return float(1.0 - within / between)


def reliability_warning(reliability) -> str | None:
    """A warning when the human measure's split-half reliability is not distinguishable from zero."""
    if not reliability.ci_low > 0:
        return (f"human reliability {reliability.estimate:.2f} (95% CI [{reliability.ci_low:.2f}, "
                f"{reliability.ci_high:.2f}]) is not distinguishable from zero: no correlation with it can be "
                "interpreted")
    return None


def readout_required(options: dict) -> tuple:
    """What a comparison with a ``readout`` option needs from the export."""
    return (options.get("readout"),)


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
    """A number for figure annotations: ``digits`` decimals, but at least two significant digits (0.0048, not 0.00)."""
    if value is None or value != value:
        return "n/a"
    if value != 0 and abs(value) < 10 ** -digits * 10:
        return f"{value:.2g}" if abs(value) >= 1e-4 else f"{value:.1e}"
    return f"{value:.{digits}f}"


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
