"""Reliability and noise ceilings of per-stimulus measures.

Split-half reliability: the units that repeat a measurement (human subjects,
or model seeds) are split at random into two halves; the per-stimulus means of
the halves are correlated across stimuli and stepped up to the full number of
units with the Spearman-Brown formula ``2 r / (1 + r)``. The reported estimate
is the mean over splits; its interval comes from a bootstrap over stimuli that
recomputes the whole procedure on every resample (the split-to-split spread is
not a sampling interval and is reported separately).

Array axes: ``(n_units, n_stimuli)`` with NaN for a missing value (e.g. a
missed trial); half means ignore NaNs.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from brainres.errors import BrainresError
from brainres.stats.kernels import rank_plan, spearman_fixed, weighted_pearson
from brainres.stats.resample import as_generator, crossed_bootstrap
from brainres.stats.result import StatResult
from brainres.stats.sparse import is_sparse_human, stimulus_means

METHODS = ("pearson", "spearman")


class ReliabilityInputError(BrainresError, ValueError):
    """Inputs a reliability computation cannot use."""


def spearman_brown(r, factor: float = 2.0):
    """Step a correlation up to ``factor`` times the data: ``k r / (1 + (k - 1) r)``."""
    r = np.asarray(r, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return factor * r / (1 + (factor - 1) * r)


def step_up(r, size_first, size_second, n_units):
    """Reliability of the mean of ``n_units`` units from the correlation ``r`` of two halves' means.

    Under the parallel-units model (every unit measures the same stimulus
    effects with noise of the same size) the means of ``a`` and ``b`` units
    correlate as ``sqrt(rel_a * rel_b)``, ``rel_k = k x / (1 + (k - 1) x)``
    with ``x`` the reliability of one unit. This solves for ``x`` and steps up
    to ``n_units``. For equal halves it is Spearman-Brown ``2 r / (1 + r)``;
    for odd counts (3 seeds: 1 against 2) it is not, and using Spearman-Brown
    there would treat the halves as equal. A negative ``r`` is stepped up as
    ``-step_up(-r)`` (no reliability, only its sign is meaningful).
    """
    r = np.asarray(r, dtype=float)
    a, b = np.asarray(size_first, dtype=float), np.asarray(size_second, dtype=float)
    magnitude = np.abs(r)
    r2 = magnitude**2
    # r^2 (1 + (a-1) x)(1 + (b-1) x) = a b x^2, a quadratic in x.
    quadratic = r2 * (a - 1) * (b - 1) - a * b
    linear = r2 * (a + b - 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        discriminant = linear**2 - 4 * quadratic * r2
        single = (-linear - np.sqrt(discriminant)) / (2 * quadratic)
        single = np.where(magnitude >= 1, 1.0, single)
        full = n_units * single / (1 + (n_units - 1) * single)
    return np.sign(r) * full


def split_halves(n_units: int, *, n_splits: int = 1000, seed=None) -> tuple[np.ndarray, bool]:
    """Random splits of ``n_units`` into two halves.

    Returns ``(masks, exhaustive)``: boolean ``masks`` of shape
    ``(n_splits, n_units)`` marking the first half. When there are no more
    distinct splits than ``n_splits``, every distinct split is returned once
    (``exhaustive=True``) and no random draw is made.
    """
    if n_units < 2:
        raise ReliabilityInputError(f"split-half reliability needs at least 2 units, got {n_units}")
    half = n_units // 2
    n_distinct = math.comb(n_units, half) // (2 if n_units % 2 == 0 else 1)
    if n_distinct <= n_splits:
        masks = []
        for first in itertools.combinations(range(n_units), half):
            # For even n, keep each split once: the half containing unit 0.
            if n_units % 2 == 0 and 0 not in first:
                continue
            mask = np.zeros(n_units, bool)
            mask[list(first)] = True
            masks.append(mask)
        return np.array(masks), True
    rng, _ = as_generator(seed)
    order = rng.permuted(np.broadcast_to(np.arange(n_units), (n_splits, n_units)), axis=1)
    masks = np.zeros((n_splits, n_units), bool)
    np.put_along_axis(masks, order[:, :half], True, axis=1)
    return masks, False


def half_means(data, masks) -> tuple[np.ndarray, np.ndarray]:
    """Per-stimulus NaN-aware means of both halves: two arrays ``(n_splits, n_stimuli)``."""
    if is_sparse_human(data):  # halves of the subjects; each stimulus keeps the raters it has in each
        return data.half_means(masks)
    data = np.asarray(data, dtype=float)
    observed = ~np.isnan(data)
    filled = np.where(observed, data, 0.0)
    first = masks.astype(float)
    second = (~masks).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_first = (first @ filled) / (first @ observed)
        mean_second = (second @ filled) / (second @ observed)
    return mean_first, mean_second


def split_half_distribution(data, *, method: str = "pearson", n_splits: int = 1000, seed=None) -> np.ndarray:
    """Spearman-Brown corrected split-half reliability of every split, shape ``(n_splits,)``."""
    data = _units_by_stimuli(data)
    _check_method(method)
    masks, _ = split_halves(data.shape[0], n_splits=n_splits, seed=seed)
    first, second = half_means(data, masks)
    return _stepped(_split_correlations(first, second, np.ones((1, data.shape[1])), method)[0], masks)


def split_half_reliability(
    data,
    *,
    method: str = "pearson",
    unit: str = "subject",
    n_splits: int = 1000,
    n_resamples: int = 2000,
    bootstrap_splits: int = 100,
    seed=None,
    ci_level: float = 0.95,
    interval: str = "bca",
    keep_distribution: bool = False,
) -> StatResult:
    """Split-half reliability of per-stimulus means, Spearman-Brown corrected.

    Parameters
    ----------
    data : array_like, shape (n_units, n_stimuli)
        One row per subject (or per model seed), NaN where missing.
    method : {"pearson", "spearman"}
        Correlation between half means.
    unit : str, default "subject"
        What the rows are ("subject" or "seed"); recorded in the result.
    n_splits : int, default 1000
        Random splits for the estimate (all distinct splits if fewer exist).
    n_resamples : int, default 2000
        Stimulus bootstrap resamples for the interval (0 to skip it).
    bootstrap_splits : int, default 100
        Splits (the first of the estimate's) recomputed in every resample.
    seed : int or numpy.random.Generator
        Splits are drawn first, then the bootstrap.
    ci_level, interval, keep_distribution
        As in :func:`brainres.stats.resample.crossed_bootstrap`.

    Returns
    -------
    StatResult
        ``extra`` holds the split-to-split SD and 2.5/97.5 % quantiles, the
        number of splits and whether they were exhaustive.
    """
    data = _units_by_stimuli(data)
    _check_method(method)
    rng, recorded_seed = as_generator(seed)
    masks, exhaustive = split_halves(data.shape[0], n_splits=n_splits, seed=rng)
    first, second = half_means(data, masks)
    per_split = _stepped(_split_correlations(first, second, np.ones((1, data.shape[1])), method)[0], masks)
    estimate = float(np.nanmean(per_split))
    extra = {
        "unit": unit,
        "n_units": int(data.shape[0]),
        "n_splits": int(masks.shape[0]),
        "exhaustive_splits": bool(exhaustive),
        "split_sd": float(np.nanstd(per_split, ddof=1)) if per_split.size > 1 else math.nan,
        "split_q025": float(np.nanquantile(per_split, 0.025)),
        "split_q975": float(np.nanquantile(per_split, 0.975)),
    }
    name = f"split_half_reliability_{method}"
    extra["estimand"] = _reliability_estimand(unit, data.shape[0], method)
    if not n_resamples:
        return StatResult(statistic=name, estimate=estimate, method="split-half, Spearman-Brown corrected",
                          n=int(data.shape[1]), seed=recorded_seed, extra=extra)
    # A random subset of the splits (not the first ones: exhaustive splits come in lexicographic order).
    chosen = _choose_splits(masks.shape[0], bootstrap_splits, rng)
    boot_first, boot_second, boot_masks = first[chosen], second[chosen], masks[chosen]

    def statistic(weights):
        r = _split_correlations(boot_first, boot_second, weights["stimulus"], method)
        return np.nanmean(_stepped(r, boot_masks), axis=1)

    result = crossed_bootstrap(
        statistic,
        {"stimulus": data.shape[1]},
        n_resamples=n_resamples,
        seed=rng,
        ci_level=ci_level,
        interval=interval,
        keep_distribution=keep_distribution,
        statistic_name=name,
        n=int(data.shape[1]),
        bounds=(-1.0, 1.0),
        extra={**extra, "bootstrap_splits": int(boot_first.shape[0])},
    )
    # The point estimate uses all splits; the bootstrap a random `bootstrap_splits` of them.
    return result.replace(
        estimate=estimate,
        seed=recorded_seed,
        method=f"split-half over {unit}s ({masks.shape[0]} {'(all) ' if exhaustive else 'random '}splits), "
               "stepped up to all units (Spearman-Brown; unequal halves by the parallel-units model); "
               + result.method,
        extra={**result.extra, "estimand": _reliability_estimand(unit, data.shape[0], method)},
    )


def correlation_ceiling(reliability_human: float, reliability_model: float = 1.0) -> float:
    """Highest correlation measurable given the reliabilities: ``sqrt(rel_h * rel_m)``."""
    product = reliability_human * reliability_model
    return math.sqrt(product) if product > 0 else math.nan


def disattenuated_correlation(
    model,
    human,
    *,
    method: str = "pearson",
    n_splits: int = 1000,
    bootstrap_splits: int = 100,
    n_resamples: int = 2000,
    seed=None,
    ci_level: float = 0.95,
    interval: str | None = None,
    keep_distribution: bool = False,
    reliability: str = "variance_components",
) -> StatResult:
    """Noise-corrected model-human correlation: the correlation of the noise-free stimulus effects.

    Estimand: the correlation, over the population of stimuli, of the model's
    expected measure over infinitely many seeds with the humans' expected
    measure over infinitely many subjects. Two estimators:

    * ``reliability="variance_components"`` (default, calibrated to 93-97 %
      coverage at 3 seeds x 160 stimuli x 10 subjects, docs/statistics.md):
      :func:`brainres.stats.latent.latent_correlation` (noise variances from
      additive unit + stimulus fits, percentile stimulus bootstrap).
    * ``reliability="split_half"``: ``r / sqrt(rel_human * rel_model)`` with
      split-half reliabilities (stepped up to all units; a single seed counts
      as noise-free), BCa stimulus bootstrap recomputing ``r`` and both
      reliabilities on the same resampled stimuli and random splits. Also
      used for sparse human data. Clipped to ``[-1, 1]``.

    Parameters
    ----------
    model : array_like, shape (n_seeds, n_stimuli) or (n_stimuli,)
    human : array_like, shape (n_subjects, n_stimuli)
    method : {"pearson", "spearman"}
    n_splits, bootstrap_splits
        Split-half estimator only.
    n_resamples, seed, ci_level, keep_distribution
        As in :func:`split_half_reliability`.
    interval : {"bca", "percentile"}, optional
        Default: BCa (both estimators).
    reliability : {"variance_components", "split_half"}

    Returns
    -------
    StatResult
        Estimate and interval within ``[-1, 1]``; ``extra``: ``estimand``,
        ``raw_r``, ``reliability_human``, ``reliability_model``,
        ``attenuation`` (= ``sqrt(rel_h * rel_m)``, the factor by which the
        noise attenuates the correlation of the means).
    """
    _check_method(method)
    if reliability not in ("variance_components", "split_half"):
        raise ReliabilityInputError(f"reliability must be 'variance_components' or 'split_half', got {reliability!r}")
    interval = interval or "bca"
    if reliability == "variance_components" and not is_sparse_human(human):
        from brainres.stats.latent import latent_correlation

        return latent_correlation(model, human, method=method, n_resamples=n_resamples, seed=seed,
                                  ci_level=ci_level, interval=interval, keep_distribution=keep_distribution)
    model = np.atleast_2d(np.asarray(model, dtype=float))
    human = _units_by_stimuli(human)
    if model.shape[1] != human.shape[1]:
        raise ReliabilityInputError(f"model has {model.shape[1]} stimuli but human has {human.shape[1]}")
    rng, recorded_seed = as_generator(seed)
    human_masks, _ = split_halves(human.shape[0], n_splits=n_splits, seed=rng)
    human_halves = half_means(human, human_masks)
    if model.shape[0] > 1:
        model_masks, _ = split_halves(model.shape[0], n_splits=n_splits, seed=rng)
        model_halves = half_means(model, model_masks)
    model_mean = model.mean(axis=0)[None, :]
    with np.errstate(invalid="ignore"):
        human_mean = stimulus_means(human)[None, :]

    every_split = {"human": np.arange(human_masks.shape[0]),
                   "model": np.arange(model_masks.shape[0]) if model.shape[0] > 1 else None}
    boot_splits = {"human": _choose_splits(human_masks.shape[0], bootstrap_splits, rng),
                   "model": _choose_splits(model_masks.shape[0], bootstrap_splits, rng) if model.shape[0] > 1 else None}

    def parts(weights, used):
        weights = np.where(np.isnan(human_mean), 0.0, weights)
        raw = _correlate(model_mean, np.nan_to_num(human_mean), weights, method)
        h = used["human"]
        rel_h = np.nanmean(_stepped(_split_correlations(human_halves[0][h], human_halves[1][h], weights, method),
                                    human_masks[h]), axis=1)
        if model.shape[0] > 1:
            m = used["model"]
            rel_m = np.nanmean(_stepped(_split_correlations(model_halves[0][m], model_halves[1][m], weights, method),
                                        model_masks[m]), axis=1)
        else:
            rel_m = np.ones_like(rel_h)
        return raw, rel_h, rel_m

    def statistic(weights):
        raw, rel_h, rel_m = parts(weights["stimulus"], boot_splits)
        with np.errstate(invalid="ignore", divide="ignore"):
            # No reliability left: the corrected correlation is at its bound.
            return np.clip(np.where(rel_h * rel_m > 0, raw / np.sqrt(rel_h * rel_m), np.sign(raw)), -1.0, 1.0)

    uniform = np.full((1, human.shape[1]), 1.0 / human.shape[1])
    raw, rel_h, rel_m = (float(v[0]) for v in parts(uniform, every_split))
    estimate = float(np.clip(raw / math.sqrt(rel_h * rel_m), -1, 1)) if rel_h * rel_m > 0 else math.copysign(1.0, raw)
    extra = {
        "estimand": "the correlation of the noise-free stimulus effects (infinitely many seeds and subjects), over "
                    "the population of stimuli",
        "raw_r": raw,
        "reliability_human": rel_h,
        "reliability_model": rel_m,
        "attenuation": correlation_ceiling(rel_h, rel_m),
        "ceiling": correlation_ceiling(rel_h, rel_m),  # the former name of "attenuation"
        "n_subjects": int(human.shape[0]),
        "n_seeds": int(model.shape[0]),
    }
    result = crossed_bootstrap(
        statistic,
        {"stimulus": human.shape[1]},
        n_resamples=n_resamples,
        seed=rng,
        ci_level=ci_level,
        interval=interval,
        keep_distribution=keep_distribution,
        statistic_name=f"disattenuated_{method}",
        n=int(human.shape[1]),
        bounds=(-1.0, 1.0),
        extra=extra,
    )
    return result.replace(
        estimate=estimate,
        seed=recorded_seed,
        method="r / sqrt(split-half reliabilities); " + result.method,
    )


def _reliability_estimand(unit, n_units, method):
    return (f"the {method} reliability of the mean of {n_units} {unit}s (the correlation it would have with the "
            f"mean of another {n_units} {unit}s), over the population of stimuli")


def _choose_splits(n_available, n_wanted, rng):
    """Indices of ``n_wanted`` splits drawn at random without replacement (all when there are fewer)."""
    if n_available <= n_wanted:
        return np.arange(n_available)
    return np.sort(rng.choice(n_available, size=n_wanted, replace=False))


def _stepped(r, masks):
    """Step split-half correlations ``(..., n_splits)`` up to all units, half sizes from ``masks``."""
    masks = np.asarray(masks, bool)
    size_first = masks.sum(axis=1)
    return step_up(r, size_first, masks.shape[1] - size_first, masks.shape[1])


def _split_correlations(first, second, weights, method):
    """Correlation of half means per split and weight row: ``(n_weight_rows, n_splits)``."""
    weights = np.atleast_2d(weights)
    columns = []
    for a, b in zip(first, second):
        # Stimuli missing in a half carry no weight for this split.
        usable = ~(np.isnan(a) | np.isnan(b))
        w = weights * usable
        columns.append(_correlate(np.where(usable, a, 0.0)[None, :], np.where(usable, b, 0.0)[None, :], w, method))
    return np.stack(columns, axis=1)


def _correlate(x, y, weights, method):
    if method == "pearson":
        return weighted_pearson(x, y, weights)
    return spearman_fixed(rank_plan(x[0]), rank_plan(y[0]), weights)


def _check_method(method):
    if method not in METHODS:
        raise ReliabilityInputError(f"method must be one of {METHODS}, got {method!r}")


def _units_by_stimuli(data):
    data = data if is_sparse_human(data) else np.asarray(data, dtype=float)
    if data.ndim != 2:
        raise ReliabilityInputError(f"data must be (n_units, n_stimuli), has shape {data.shape}")
    if data.shape[0] < 2:
        raise ReliabilityInputError(f"split-half reliability needs at least 2 units (rows), got {data.shape[0]}")
    if data.shape[1] < 3:
        raise ReliabilityInputError(f"split-half reliability needs at least 3 stimuli, got {data.shape[1]}")
    return data
