"""Correlations between per-stimulus model measures and human measures.

Plain correlations (:func:`correlate`, :func:`partial_correlation`) reproduce
pingouin's estimates, p-values and Fisher-z intervals. :func:`correlate_over_seeds`
aggregates over model seeds two ways. :func:`bootstrap_correlation` resamples
seeds, stimuli and subjects (crossed) with the engine in
:mod:`brainres.stats.resample`, and :func:`permutation_correlation` tests by
permuting stimulus labels.

The resampled statistics use the weighted kernels of
:mod:`brainres.stats.kernels`, so a bootstrap resample (weights = counts / n)
is evaluated without copying data.

Array axes: model measures are ``(n_seeds, n_stimuli)`` (or ``(n_stimuli,)``),
human measures ``(n_subjects, n_stimuli)`` (or ``(n_stimuli,)``), NaN = missing
in human data.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import xarray as xr
from scipy import stats as sps

from brainres.errors import BrainresError, StimulusMismatchError
from brainres.stats.kernels import (
    compiled,
    rank_plan,
    spearman_fixed,
    weighted_kendall,
    weighted_pearson,
)
from brainres.stats.resample import (
    INTERVAL_ALIASES,
    crossed_bootstrap,
    permutation_test,
)
from brainres.stats.result import StatResult
from brainres.stats.sparse import is_sparse_human, sparse_correlation_statistic

METHODS = ("pearson", "spearman", "kendall")
AGGREGATES = ("seed_mean", "mean_of_seeds")


class CorrelationInputError(BrainresError, ValueError):
    """Inputs to a correlation that do not fit together."""


# --- plain correlations ---------------------------------------------------------


def correlate(x, y, *, method: str = "spearman", alternative: str = "two-sided", ci_level: float = 0.95) -> StatResult:
    """Correlation of two per-stimulus vectors with p-value and Fisher-z interval.

    Equals ``pingouin.corr(x, y, method=method)`` (``r``, ``p_val``, ``CI95``).

    Parameters
    ----------
    x, y : array_like, shape (n_stimuli,)
        Pairs with a NaN on either side are removed (as pingouin does) and the
        count of removed pairs reported in ``extra["n_removed"]``.
    method : {"spearman", "pearson", "kendall"}
        Kendall is tau-b with scipy's p-value.
    alternative : {"two-sided", "greater", "less"}
    ci_level : float, default 0.95

    Returns
    -------
    StatResult
    """
    _check_method(method)
    x, y, n_removed = _paired(x, y)
    if method == "pearson":
        r, p = sps.pearsonr(x, y, alternative=alternative)
    elif method == "spearman":
        r, p = sps.spearmanr(x, y, alternative=alternative)
    else:
        r, p = sps.kendalltau(x, y, alternative=alternative)
    r = float(np.clip(r, -1, 1))
    if alternative != "two-sided" and method != "kendall":
        p = _t_p_value(r, x.size, 0, alternative)
    low, high = fisher_interval(r, x.size, ci_level=ci_level, alternative=alternative)
    return StatResult(
        statistic=method,
        estimate=r,
        ci_low=low,
        ci_high=high,
        ci_level=ci_level,
        interval="fisher_z",
        method=f"{method} correlation, {alternative} p-value",
        p_value=float(p),
        n=int(x.size),
        extra={"n_removed": n_removed, "estimand": f"the {method} correlation of these two per-stimulus measures "
               "over the population of stimuli (each measure as it is: noise in it attenuates the value)"},
    )


def partial_correlation(
    x, y, covariates, *, method: str = "pearson", alternative: str = "two-sided", ci_level: float = 0.95
) -> StatResult:
    """Partial correlation of ``x`` and ``y`` controlling for covariates.

    Equals ``pingouin.partial_corr`` (same estimate, t-test p-value with
    ``n - k - 2`` degrees of freedom and Fisher-z interval with ``n - k``).

    Parameters
    ----------
    x, y : array_like, shape (n_stimuli,)
    covariates : array_like, shape (n_stimuli,) or (n_stimuli, k)
        E.g. per-stimulus accuracy. Rows with a NaN anywhere are removed.
    method : {"pearson", "spearman"}
        Spearman ranks all variables first.
    """
    if method not in ("pearson", "spearman"):
        raise CorrelationInputError(f"partial correlation supports method 'pearson' or 'spearman', got {method!r}")
    x = _vector(x, "x")
    y = _vector(y, "y")
    covariates = np.asarray(covariates, dtype=float)
    covariates = covariates[:, None] if covariates.ndim == 1 else covariates
    if covariates.ndim != 2 or covariates.shape[0] != x.size or y.size != x.size:
        raise CorrelationInputError(
            f"x ({x.size}), y ({y.size}) and covariates ({covariates.shape[0]} rows) must cover the same stimuli"
        )
    table = np.column_stack([x, y, covariates])
    keep = ~np.isnan(table).any(axis=1)
    table = table[keep]
    n, k = table.shape[0], covariates.shape[1]
    if n - k - 2 < 1:
        raise CorrelationInputError(f"{n} complete stimuli are too few for a partial correlation with {k} covariate(s)")
    if method == "spearman":
        table = np.apply_along_axis(sps.rankdata, 0, table)
    # Partial correlation from the inverse covariance (precision) matrix.
    standardized = (table - table.mean(axis=0)) / table.std(axis=0, ddof=1)
    precision = np.linalg.pinv(np.cov(standardized, rowvar=False), hermitian=True)
    r = float(np.clip(-precision[0, 1] / math.sqrt(precision[0, 0] * precision[1, 1]), -1, 1))
    p = _t_p_value(r, n, k, alternative)
    low, high = fisher_interval(r, n - k, ci_level=ci_level, alternative=alternative)
    return StatResult(
        statistic=f"partial_{method}",
        estimate=r,
        ci_low=low,
        ci_high=high,
        ci_level=ci_level,
        interval="fisher_z",
        method=f"partial {method} correlation controlling for {k} covariate(s), {alternative} p-value",
        p_value=p,
        n=n,
        extra={"n_covariates": k, "n_removed": int((~keep).sum())},
    )


def fisher_interval(r: float, n: int, *, ci_level: float = 0.95, alternative: str = "two-sided") -> tuple[float, float]:
    """Fisher-z interval of a correlation (pingouin's ``compute_esci``)."""
    if n <= 3 or abs(r) >= 1:
        return (r, r) if abs(r) >= 1 else (math.nan, math.nan)
    z, se = math.atanh(r), 1 / math.sqrt(n - 3)
    if alternative == "two-sided":
        critical = sps.norm.ppf(1 - (1 - ci_level) / 2)
        return math.tanh(z - critical * se), math.tanh(z + critical * se)
    critical = sps.norm.ppf(ci_level)
    if alternative == "greater":
        return math.tanh(z - critical * se), 1.0
    return -1.0, math.tanh(z + critical * se)


def correlate_over_seeds(model, human, *, method: str = "spearman") -> list[StatResult]:
    """Model-human correlation aggregated over seeds, both ways.

    Parameters
    ----------
    model : array_like, shape (n_seeds, n_stimuli)
    human : array_like, shape (n_stimuli,) or (n_subjects, n_stimuli)
        Per-subject rows are averaged over subjects (NaN-aware).
    method : {"spearman", "pearson", "kendall"}

    Returns
    -------
    list of StatResult
        ``seed_mean``: correlation of the seed-averaged measure (with the
        correlate() p-value); ``mean_of_seeds``: mean of per-seed correlations
        with ``extra`` holding their SD and the number of seeds.
    """
    model, human = _model_human(model, human)
    human_mean = np.nanmean(human, axis=0)
    of_mean = correlate(model.mean(axis=0), human_mean, method=method)
    per_seed = np.array([correlate(row, human_mean, method=method).estimate for row in model])
    return [
        of_mean.replace(statistic=f"{method}_seed_mean", method=f"{method} correlation of the seed-mean model measure",
                        extra={**of_mean.extra, "n_seeds": model.shape[0]}),
        StatResult(
            statistic=f"{method}_mean_of_seeds",
            estimate=float(per_seed.mean()),
            method=f"mean over seeds of per-seed {method} correlations",
            n=int(model.shape[1]),
            extra={"n_seeds": model.shape[0], "seed_sd": float(per_seed.std(ddof=1)) if per_seed.size > 1 else math.nan},
        ),
    ]


# --- resampling -----------------------------------------------------------------


def correlation_statistic(model, human, *, method: str = "spearman", aggregate: str = "seed_mean"):
    """The weighted statistic behind :func:`bootstrap_correlation`.

    Returns ``(statistic, sizes)`` for :func:`~brainres.stats.resample.crossed_bootstrap`:
    factors ``seed`` (rows of ``model``), ``stimulus`` and ``subject`` (rows of
    ``human``). Model seeds are averaged with the seed weights ("seed_mean") or
    per-seed correlations are averaged with them ("mean_of_seeds"); human rows
    are averaged with the subject weights, ignoring NaNs.
    """
    if is_sparse_human(human):  # subjects who saw different stimuli: brainres.stats.sparse
        return sparse_correlation_statistic(model, human, method=method, aggregate=aggregate)
    _check_method(method)
    if aggregate not in AGGREGATES:
        raise CorrelationInputError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    model, human = _model_human(model, human)
    n_seeds, n_stimuli = model.shape
    n_subjects = human.shape[0]
    observed = ~np.isnan(human)
    human_filled = np.where(observed, human, 0.0)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN stimuli stay NaN
        human_fixed = np.nanmean(human, axis=0)
    human_missing = bool(np.isnan(human).any())
    # Sorting once is enough when a side does not change across resamples.
    human_plan = rank_plan(human_fixed)
    seed_plans = [rank_plan(row) for row in model]
    mean_plan = rank_plan(model.mean(axis=0))
    model = np.ascontiguousarray(model)
    seed_cache = {}

    def human_side(subject_weights):
        if n_subjects == 1 or np.ptp(subject_weights, axis=None) == 0:
            return human_fixed[None, :], human_plan
        counts = _as_counts(subject_weights)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = (counts @ human_filled) / (counts @ observed)
        return values, None

    def seed_means(seed_w):
        """Resampled seed sums of the model measure (ranked per row for Spearman);
        the engine passes the same seed draws to every factor subset of a
        batch, so they are computed and sorted once."""
        if seed_cache.get("weights") is not seed_w:
            # Seed sums rather than means: one scale per row changes no
            # correlation, and integer counts keep tied measures exactly tied.
            values = np.ascontiguousarray(_as_counts(seed_w) @ model)
            seed_cache.update(weights=seed_w, plan=rank_plan(values) if method == "spearman" else values)
        return seed_cache["plan"]

    def kernel(x, plan_x, y, plan_y, weights):
        if method == "pearson":
            return weighted_pearson(x, y, weights)
        if method == "kendall":
            return weighted_kendall(x, y, weights)
        return spearman_fixed(plan_x or rank_plan(x), plan_y or rank_plan(y), weights)

    def statistic(weights):
        seed_w, stimulus_w, subject_w = weights["seed"], weights["stimulus"], weights["subject"]
        human_values, human_sorted = human_side(subject_w)
        # Stimuli whose resampled subjects all missed get no weight.
        if human_missing:
            stimulus_w = np.where(np.isnan(human_values), 0.0, stimulus_w)
            human_values = np.nan_to_num(human_values)
            human_sorted = None if human_sorted is None else rank_plan(human_values)
        if aggregate == "seed_mean":
            if n_seeds == 1 or np.ptp(seed_w) == 0:
                return kernel(mean_plan.values, mean_plan, human_values, human_sorted, stimulus_w)
            means = seed_means(seed_w)
            if method == "spearman":
                return kernel(means.values, means, human_values, human_sorted, stimulus_w)
            return kernel(means, None, human_values, human_sorted, stimulus_w)
        per_seed = np.stack(
            [kernel(model[s][None, :], seed_plans[s], human_values, human_sorted, stimulus_w) for s in range(n_seeds)],
            axis=1,
        )
        return (seed_w * per_seed).sum(axis=1)

    if method == "spearman" and aggregate == "seed_mean":
        usable = (~np.isnan(human_fixed)).astype(float)
        filled_plan = rank_plan(np.nan_to_num(human_fixed))
        filled, seen = np.ascontiguousarray(human_filled), np.ascontiguousarray(observed, dtype=float)
        parts = [frozenset(subset) for subset in compiled().CROSSED_SUBSETS]

        def evaluate_subsets(counts, subsets):
            """All factor subsets of one batch in one compiled pass (see crossed_bootstrap)."""
            batch = next(iter(counts.values())).shape[0]
            empty = np.empty((0, 1), dtype=np.int32)
            wanted = np.array([part in subsets for part in parts])
            rows = compiled().crossed_spearman(
                model, counts.get("seed", empty), counts.get("stimulus", empty), counts.get("subject", empty),
                filled, seen, filled_plan.sorted[0], filled_plan.order[0], mean_plan.sorted[0], mean_plan.order[0],
                usable, wanted,
            )
            by_subset = dict(zip(parts, rows))
            return {subset: by_subset[subset][:batch] for subset in subsets}

        statistic.evaluate_subsets = evaluate_subsets

    sizes = {"seed": n_seeds, "stimulus": n_stimuli, "subject": n_subjects}
    return statistic, sizes


def bootstrap_correlation(
    model,
    human,
    *,
    method: str = "spearman",
    aggregate: str = "seed_mean",
    resample=None,
    n_resamples: int = 10_000,
    seed=None,
    ci_level: float = 0.95,
    interval: str = "bias_shifted_percentile",
    correction: str = "dual",
    batch_size: int | None = None,
    keep_distribution: bool = False,
) -> StatResult:
    """Bootstrap interval of a model-human correlation over seeds, stimuli and subjects.

    One resample draws seeds ``s*``, stimuli ``i*`` and subjects ``j*`` with
    replacement (independently: a crossed design) and computes
    ``corr(mean over s* of model[s*, i*], mean over j* of human[j*, i*])``.

    Parameters
    ----------
    model : array_like, shape (n_seeds, n_stimuli) or (n_stimuli,)
    human : array_like, shape (n_subjects, n_stimuli) or (n_stimuli,)
    method : {"spearman", "pearson", "kendall"}
    aggregate : {"seed_mean", "mean_of_seeds"}
    resample : sequence of str, optional
        Factors to resample among "seed", "stimulus", "subject"; default every
        factor with more than one unit.
    interval : {"bias_shifted_percentile", "bca", "percentile"}
        Default ``bias_shifted_percentile`` (the percentile interval shifted
        by twice the bootstrap bias; formerly called ``bias_corrected``):
        averaging few noisy seeds or subjects attenuates the correlation, so
        resamples with repeated seeds/subjects fall mostly below the
        estimate; the bootstrap bias then estimates the attenuation (to
        first order only: it under-corrects at 3 seeds and 10 noisy subjects,
        see the calibration in docs/statistics.md; for the noise-free
        correlation use :func:`brainres.stats.latent.latent_correlation`),
        and the estimate and interval are centred on ``estimate - bias``.
    n_resamples, seed, ci_level, correction, batch_size, keep_distribution
        See :func:`brainres.stats.resample.crossed_bootstrap`.

    Returns
    -------
    StatResult
        With the bias-shifted interval the estimate is ``r - bias`` (the
        plain correlation of the means in ``extra["plug_in_estimate"]``),
        otherwise the plain correlation; ``extra`` holds ``bootstrap_bias``,
        ``bootstrap_se`` and ``estimand``.
    """
    statistic, sizes = correlation_statistic(model, human, method=method, aggregate=aggregate)
    if resample is None:
        resample = [f for f in ("seed", "stimulus", "subject") if sizes[f] > 1]
    estimand = bootstrap_estimand(method, sizes, resample, interval)
    fixed = {f: n for f, n in sizes.items() if n == 1}
    active = {f: n for f, n in sizes.items() if n > 1}

    def active_statistic(weights):
        batch = next(iter(weights.values())).shape[0]
        full = dict(weights)
        for f in fixed:
            full[f] = np.ones((batch, 1))
        return statistic(full)

    if hasattr(statistic, "evaluate_subsets"):
        active_statistic.evaluate_subsets = statistic.evaluate_subsets

    return crossed_bootstrap(
        active_statistic,
        active,
        resample=resample,
        n_resamples=n_resamples,
        seed=seed,
        ci_level=ci_level,
        interval=interval,
        correction=correction,
        batch_size=batch_size,
        keep_distribution=keep_distribution,
        statistic_name=f"{method}_{aggregate}",
        n=sizes["stimulus"],
        bounds=(-1.0, 1.0),
        extra={"n_seeds": sizes["seed"], "n_subjects": sizes["subject"], "estimand": estimand},
    )


def bootstrap_estimand(method: str, sizes: dict, resample, interval: str) -> str:
    """In words: what the bootstrap interval of a model-human correlation is an interval for.

    The bootstrap treats the resampled factors as samples from populations:
    its target is the correlation with infinitely many units of each resampled
    factor (seeds, subjects) and over the population of stimuli, while factors
    held fixed stay at their sample (these seeds' mean, these subjects' mean).
    """
    resample = set(resample)
    seeds = ("the model's expected measure over infinitely many seeds" if "seed" in resample and sizes["seed"] > 1
             else f"the model's mean over these {sizes['seed']} seed(s)")
    subjects = ("the humans' expected measure over infinitely many subjects" if "subject" in resample
                and sizes["subject"] > 1 else f"the mean of these {sizes['subject']} subject(s)")
    stimuli = "over the population of stimuli" if "stimulus" in resample else "over these stimuli"
    text = f"the {method} correlation, {stimuli}, of {seeds} with {subjects}"
    if INTERVAL_ALIASES.get(interval, interval) == "bias_shifted_percentile":
        text += ("; the attenuation by the resampled units' noise is removed to first order only (the bootstrap "
                 "bias), which under-corrects strong attenuation")
    return text


def permutation_correlation(
    model,
    human,
    *,
    method: str = "spearman",
    n_permutations: int = 10_000,
    seed=None,
    alternative: str = "two-sided",
    batch_size: int | None = None,
    keep_distribution: bool = False,
) -> StatResult:
    """Permutation test of the seed-mean model vs subject-mean human correlation.

    The stimulus labels of the human side are permuted;
    ``p = (1 + #{|r_perm| >= |r_obs|}) / (1 + n_permutations)``.
    """
    _check_method(method)
    model, human = _model_human(model, human)
    model_mean = model.mean(axis=0)
    human_mean = np.nanmean(human, axis=0)
    keep = ~np.isnan(human_mean)
    model_mean, human_mean = model_mean[keep], human_mean[keep]
    if method == "spearman":
        model_mean, human_mean = sps.rankdata(model_mean), sps.rankdata(human_mean)
        kernel = weighted_pearson  # ranks do not change under permutation
    else:
        kernel = weighted_pearson if method == "pearson" else weighted_kendall
    uniform = np.ones(model_mean.size)

    def statistic(permutations):
        return kernel(model_mean[None, :], human_mean[permutations], uniform)

    return permutation_test(
        statistic,
        model_mean.size,
        n_permutations=n_permutations,
        seed=seed,
        alternative=alternative,
        batch_size=batch_size,
        keep_distribution=keep_distribution,
        statistic_name=method,
        extra={"n_removed": int((~keep).sum())},
    )


# --- xarray helpers -------------------------------------------------------------


def align_stimuli(model: xr.DataArray, human: xr.DataArray, *, left: str = "model", right: str = "human"):
    """Put ``human`` in ``model``'s ``stimulus_id`` order; both must hold the same stimuli.

    Raises
    ------
    StimulusMismatchError
        Listing the stimuli present on one side only.
    """
    for name, array in ((left, model), (right, human)):
        if "stimulus_id" not in array.dims:
            raise CorrelationInputError(f"{name} has dims {array.dims}; it needs a 'stimulus_id' dimension")
        ids = np.asarray(array["stimulus_id"].values).astype(str)
        if np.unique(ids).size != ids.size:
            raise CorrelationInputError(f"{name} has duplicate stimulus_id values")
    model_ids = np.asarray(model["stimulus_id"].values).astype(str)
    human_ids = np.asarray(human["stimulus_id"].values).astype(str)
    only_model = sorted(set(model_ids) - set(human_ids))
    only_human = sorted(set(human_ids) - set(model_ids))
    if only_model or only_human:
        raise StimulusMismatchError(only_human, only_model, left, right)
    human = human.assign_coords(stimulus_id=human_ids).sel(stimulus_id=model_ids)
    return model, human


def dataarray_inputs(model: xr.DataArray, human: xr.DataArray):
    """Numpy inputs ``(model (seed, stimulus), human (subject, stimulus), stimulus_ids)`` from DataArrays.

    ``model`` has dims ``stimulus_id`` and optionally ``seed``; ``human`` has
    ``stimulus_id`` and optionally ``subject``. Stimuli are aligned by label.
    """
    model, human = align_stimuli(model, human)
    for name, array, extra_dim in (("model", model, "seed"), ("human", human, "subject")):
        unexpected = set(array.dims) - {"stimulus_id", extra_dim}
        if unexpected:
            raise CorrelationInputError(f"{name} has unexpected dims {sorted(unexpected)}; reduce them first")
    model_values = model.transpose(*[d for d in ("seed", "stimulus_id") if d in model.dims]).values
    human_values = human.transpose(*[d for d in ("subject", "stimulus_id") if d in human.dims]).values
    return np.atleast_2d(model_values), np.atleast_2d(human_values), np.asarray(model["stimulus_id"].values).astype(str)


# --- helpers --------------------------------------------------------------------


def _as_counts(weights):
    """Integer counts behind resampling weights (``counts / n``, leave-one-out, equal).

    Weighted means of integer-valued measures (steps, correct answers) must
    stay exactly tied when their units are, which float weights like 0.1 do
    not guarantee; integer counts do. Weights that are not proportional to
    integers are returned unchanged.
    """
    weights = np.atleast_2d(weights)
    smallest = np.where(weights > 0, weights, np.inf).min(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = weights / smallest
    counts = np.rint(scaled)
    if np.all(np.isfinite(scaled)) and np.allclose(scaled, counts, rtol=0, atol=1e-6):
        return counts
    return weights


def _check_method(method):
    if method not in METHODS:
        raise CorrelationInputError(f"method must be one of {METHODS}, got {method!r}")


def _vector(values, name):
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise CorrelationInputError(f"{name} must be one value per stimulus (1-d), has shape {values.shape}")
    return values


def _paired(x, y):
    x, y = _vector(x, "x"), _vector(y, "y")
    if x.size != y.size:
        raise CorrelationInputError(f"x has {x.size} stimuli but y has {y.size}")
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 3:
        raise CorrelationInputError(f"only {int(keep.sum())} stimuli have both values; a correlation needs at least 3")
    return x[keep], y[keep], int((~keep).sum())


def _model_human(model, human):
    model = np.atleast_2d(np.asarray(model, dtype=float))
    human = np.atleast_2d(np.asarray(human, dtype=float))
    if model.ndim != 2 or human.ndim != 2:
        raise CorrelationInputError(
            f"model must be (n_seeds, n_stimuli) and human (n_subjects, n_stimuli); got {model.shape} and {human.shape}"
        )
    if model.shape[1] != human.shape[1]:
        raise CorrelationInputError(f"model has {model.shape[1]} stimuli but human has {human.shape[1]}")
    if np.isnan(model).any():
        bad = np.flatnonzero(np.isnan(model).any(axis=0))
        raise CorrelationInputError(f"model has NaN for {bad.size} stimuli (first at stimulus index {bad[0]})")
    if model.shape[1] < 3:
        raise CorrelationInputError(f"{model.shape[1]} stimuli are too few for a correlation")
    return model, human


def _t_p_value(r, n, k, alternative):
    dof = n - k - 2
    if abs(r) >= 1:
        return 0.0
    t_value = r * math.sqrt(dof / (1 - r**2))
    if alternative == "greater":
        return float(sps.t.sf(t_value, dof))
    if alternative == "less":
        return float(sps.t.cdf(t_value, dof))
    return float(2 * sps.t.sf(abs(t_value), dof))
