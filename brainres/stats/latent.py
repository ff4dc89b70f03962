"""Correlation of latent (noise-free) stimulus effects, from variance components.

The quantity a noise ceiling is about is the correlation, over the population
of stimuli, between the model's *expected* per-stimulus measure (infinitely
many seeds) and the humans' *expected* per-stimulus measure (infinitely many
subjects). Means over a few seeds and subjects carry measurement noise that
attenuates their correlation. Here each side is described by an additive
layout ``y_ui = a_u + e_i + noise_ui`` (unit effect ``a_u``, stimulus effect
``e_i``): the stimulus effects are estimated by unit-adjusted means (unit
effects removed, which matters when some cells are missing), the noise
variance by the residual mean square of the additive fit, and then

* covariance of the latent effects = covariance of the means (noise is
  independent between the two sides);
* variance of the latent effects = variance of the means minus the mean noise
  variance of a mean (``sigma^2 / n_i``, ``n_i`` units observed on stimulus
  ``i``);

so ``r_latent = cov / sqrt(var_latent_model * var_latent_human)`` (Pearson).
For Spearman the rank correlation of the means is divided by the square root
of the two reliabilities ``var_latent / var_means`` computed on the rank
scale (each seed's and each subject's measure replaced by its mid-rank over
the stimuli, scaled to ``[0, 1]``, so a few extreme values do not set the
noise variance); first order, close for bivariate normal latent effects. The interval is a BCa bootstrap over
stimuli (percentile on request) that recomputes the whole estimator: each stimulus carries its own
noise, so resampling stimuli also resamples the seed and subject noise.
Estimates and interval ends are kept in ``[-1, 1]``; a resample whose latent
variance estimate is not positive (no detectable stimulus effect beyond the
noise) counts as ``+-1`` with the sign of the covariance.
"""

from __future__ import annotations

import math

import numpy as np

from brainres.errors import BrainresError
from brainres.stats.kernels import rank_plan, spearman_fixed
from brainres.stats.resample import crossed_bootstrap
from brainres.stats.result import StatResult

METHODS = ("pearson", "spearman")
ESTIMAND = ("the correlation, over the population of stimuli, of the noise-free stimulus effects: the model's "
            "expected measure over infinitely many seeds with the humans' expected measure over infinitely many "
            "subjects (not attenuated by seed or subject noise)")


class LatentInputError(BrainresError, ValueError):
    """Inputs a latent-correlation estimate cannot use."""


def stimulus_effects(data, *, n_iterations: int = 50) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Unit-adjusted stimulus means and the noise of each, from an additive (unit + stimulus) fit.

    Parameters
    ----------
    data : array_like, shape (n_units, n_stimuli)
        NaN where a unit has no value for a stimulus.

    Returns
    -------
    effects : numpy.ndarray, shape (n_stimuli,)
        Per-stimulus mean of ``y_ui - a_u`` over the units observed on it (the
        plain mean when nothing is missing). NaN for a stimulus no unit saw.
    noise : numpy.ndarray, shape (n_stimuli,)
        ``sigma^2 / n_i``: the noise variance of each mean (0 with one unit).
    sigma2 : float
        Residual mean square of the additive fit (NaN with one unit).
    df : int
        Its degrees of freedom.
    """
    data = np.atleast_2d(np.asarray(data, dtype=float))
    observed = ~np.isnan(data)
    counts = observed.sum(axis=0)
    n_units, n_stimuli = data.shape
    filled = np.where(observed, data, 0.0)
    unit = np.zeros(n_units)
    with np.errstate(invalid="ignore", divide="ignore"):
        effects = filled.sum(axis=0) / counts
        if not observed.all():
            # Alternating least squares for the additive fit (converges fast: few missing cells).
            for _ in range(n_iterations):
                residual = np.where(observed, data - effects[None, :], 0.0)
                unit = residual.sum(axis=1) / np.maximum(observed.sum(axis=1), 1)
                unit -= unit.mean()
                updated = np.where(observed, data - unit[:, None], 0.0).sum(axis=0) / counts
                if np.allclose(updated, effects, equal_nan=True, rtol=0, atol=1e-12):
                    effects = updated
                    break
                effects = updated
        else:
            unit = data.mean(axis=1) - data.mean()
    usable = counts > 0
    df = int(observed.sum() - usable.sum() - n_units + 1)
    if n_units < 2 or df < 1:
        return effects, np.zeros(n_stimuli), math.nan, max(df, 0)
    residual = np.where(observed, data - unit[:, None] - np.nan_to_num(effects)[None, :], 0.0)
    sigma2 = float((residual**2).sum() / df)
    with np.errstate(divide="ignore"):
        noise = np.where(usable, sigma2 / np.maximum(counts, 1), np.nan)
    return effects, noise, sigma2, df


def unit_rank_scores(data) -> np.ndarray:
    """Each row's mid-ranks over its observed (non-NaN) columns, scaled to ``(rank - 0.5) / n_observed``."""
    from scipy.stats import rankdata

    data = np.atleast_2d(np.asarray(data, dtype=float))
    scores = np.full(data.shape, np.nan)
    for row, values in enumerate(data):
        seen = ~np.isnan(values)
        if seen.any():
            scores[row, seen] = (rankdata(values[seen]) - 0.5) / seen.sum()
    return scores


def latent_correlation_statistic(model, human, *, method: str = "pearson"):
    """The weighted statistic behind :func:`latent_correlation` and its parts.

    Returns ``(statistic, parts)``: ``statistic(weights)`` maps ``{"stimulus":
    (batch, n_stimuli)}`` weights to latent correlations ``(batch,)``;
    ``parts`` holds the per-stimulus effects, noise and residual variances.
    """
    if method not in METHODS:
        raise LatentInputError(f"method must be one of {METHODS}, got {method!r}")
    model = np.atleast_2d(np.asarray(model, dtype=float))
    human = np.atleast_2d(np.asarray(human, dtype=float))
    if model.ndim != 2 or human.ndim != 2 or model.shape[1] != human.shape[1]:
        raise LatentInputError(f"model (n_seeds, n_stimuli) and human (n_subjects, n_stimuli) must cover the same "
                               f"stimuli; got {model.shape} and {human.shape}")
    if np.isnan(model).any():
        raise LatentInputError("model has NaN values; every seed needs a value for every stimulus")
    if method == "spearman":
        # The rank correlation of the means, divided by the square root of both reliabilities on the rank scale:
        # each seed's and each subject's measure becomes its mid-rank over the stimuli it has, in [0, 1], and the
        # variance components are those of these rank scores (so a few extreme values do not set the noise).
        raw_model, _, _, _ = stimulus_effects(model)
        raw_human, _, _, _ = stimulus_effects(human)
        model, human = unit_rank_scores(model), unit_rank_scores(human)
    model_effect, model_noise, model_sigma2, model_df = stimulus_effects(model)
    human_effect, human_noise, human_sigma2, human_df = stimulus_effects(human)
    seen = ~np.isnan(human_effect)
    if seen.sum() < 4:
        raise LatentInputError(f"only {int(seen.sum())} stimuli have a human value; a latent correlation needs 4")
    model_effect, model_noise = model_effect[seen], model_noise[seen]
    human_effect, human_noise = human_effect[seen], human_noise[seen]
    n = int(seen.sum())
    plans = (rank_plan(raw_model[seen]), rank_plan(raw_human[seen])) if method == "spearman" else None

    def moments(weights):
        weights = np.atleast_2d(weights)
        weights = weights / weights.sum(axis=1, keepdims=True)
        # n / (n - 1): the plug-in (co)variances of a resample of n stimuli are biased by (n - 1) / n.
        unbiased = n / (n - 1)
        mean_x, mean_y = weights @ model_effect, weights @ human_effect
        dx = model_effect[None, :] - mean_x[:, None]
        dy = human_effect[None, :] - mean_y[:, None]
        var_x = unbiased * np.einsum("bi,bi->b", weights, dx * dx)
        var_y = unbiased * np.einsum("bi,bi->b", weights, dy * dy)
        cov = unbiased * np.einsum("bi,bi->b", weights, dx * dy)
        latent_x = var_x - weights @ model_noise
        latent_y = var_y - weights @ human_noise
        return cov, var_x, var_y, latent_x, latent_y

    def statistic(weights):
        weights = weights["stimulus"] if isinstance(weights, dict) else weights
        cov, var_x, var_y, latent_x, latent_y = moments(weights)
        defined = (latent_x > 0) & (latent_y > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            if method == "pearson":
                r = cov / np.sqrt(latent_x * latent_y)
            else:
                observed = spearman_fixed(plans[0], plans[1], np.atleast_2d(weights))
                r = observed / np.sqrt((latent_x / var_x) * (latent_y / var_y))
        # No stimulus variance left beyond the noise: the latent correlation is at a bound.
        r = np.where(defined, r, np.sign(cov))
        return np.clip(r, -1.0, 1.0)

    uniform = np.full((1, n), 1.0 / n)
    _, var_x, var_y, latent_x, latent_y = (float(v[0]) for v in moments(uniform))
    parts = {
        "n_stimuli_used": n,
        "model_noise_variance": model_sigma2, "human_noise_variance": human_sigma2,
        "model_noise_df": model_df, "human_noise_df": human_df,
        "reliability_model": latent_x / var_x if var_x > 0 else math.nan,
        "reliability_human": latent_y / var_y if var_y > 0 else math.nan,
    }
    return statistic, parts


def latent_correlation(
    model,
    human,
    *,
    method: str = "pearson",
    n_resamples: int = 2000,
    seed=None,
    ci_level: float = 0.95,
    interval: str = "bca",
    keep_distribution: bool = False,
) -> StatResult:
    """Correlation of the latent (noise-free) stimulus effects of a model and of humans.

    Parameters
    ----------
    model : array_like, shape (n_seeds, n_stimuli) or (n_stimuli,)
        Per-seed model measure. With one seed the model side counts as
        noise-free (recorded in ``extra["reliability_model"] = 1``).
    human : array_like, shape (n_subjects, n_stimuli)
        Per-subject human measure, NaN where a subject has no trial.
    method : {"pearson", "spearman"}
    n_resamples : int, default 2000
        Stimulus bootstrap resamples.
    seed : int or numpy.random.Generator
    ci_level : float, default 0.95
    interval : {"bca", "percentile"}
        BCa by default: calibrated at 93-97 % from 3 seeds x 100 stimuli x 5
        subjects to 10 x 2,000 x 50, where the percentile interval fell short
        at the smallest design with Pearson (docs/statistics.md).
    keep_distribution : bool, default False

    Returns
    -------
    StatResult
        ``estimate`` in ``[-1, 1]``; ``extra`` holds ``estimand``, the
        reliabilities of the two means implied by the variance components
        (``reliability_model``, ``reliability_human``) and the attenuation
        factor ``sqrt(rel_h * rel_m)``, the noise variances and ``raw_r``, the
        plain correlation of the means.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> effect = rng.normal(size=300)
    >>> model = effect + rng.normal(size=(3, 300))          # 3 noisy seeds
    >>> human = effect + 2 * rng.normal(size=(10, 300))     # 10 noisy subjects
    >>> result = latent_correlation(model, human, n_resamples=1000, seed=0)
    >>> bool(result.ci_low < 1.0 <= result.ci_high + 1e-9) or result.ci_low > 0.8
    True
    """
    statistic, parts = latent_correlation_statistic(model, human, method=method)
    from brainres.stats.correlate import correlate

    model = np.atleast_2d(np.asarray(model, dtype=float))
    human = np.atleast_2d(np.asarray(human, dtype=float))
    seen = ~np.all(np.isnan(human), axis=0)  # a stimulus no subject saw has no mean (the statistic drops it too)
    with np.errstate(invalid="ignore"):
        raw = correlate(model.mean(axis=0)[seen], np.nanmean(human[:, seen], axis=0), method=method).estimate
    n = parts["n_stimuli_used"]
    rel_m, rel_h = parts["reliability_model"], parts["reliability_human"]
    extra = {
        "estimand": ESTIMAND,
        "raw_r": raw,
        **parts,
        # sqrt(rel_m rel_h): the factor by which noise attenuates the correlation of the means
        "attenuation": math.sqrt(rel_m * rel_h) if rel_m > 0 and rel_h > 0 else math.nan,
        "n_seeds": int(model.shape[0]),
        "n_subjects": int(human.shape[0]),
    }
    result = crossed_bootstrap(
        statistic, {"stimulus": n}, n_resamples=n_resamples, seed=seed, ci_level=ci_level, interval=interval,
        keep_distribution=keep_distribution, statistic_name=f"latent_{method}", n=n, bounds=(-1.0, 1.0),
        extra=extra)
    if not (rel_m > 0 and rel_h > 0):
        # a side without stimulus variance beyond its noise: the correlation would sit at a bound (+-1) with an
        # interval at the same bound; say what it is instead
        sides = [side for side, r in (("model (across seeds)", rel_m), ("human (across subjects)", rel_h))
                 if not r > 0]
        reason = (f"the {' and the '.join(sides)} measure has no stimulus variance beyond its noise (reliability "
                  f"{rel_m:.2f} / {rel_h:.2f}): the noise-free correlation is not defined")
        result = result.replace(estimate=math.nan, ci_low=math.nan, ci_high=math.nan,
                                extra={**result.extra, "not_estimable": reason})
    how = ("Pearson correlation of the stimulus means with each side's noise variance (from an additive unit + "
           "stimulus fit) removed from its variance" if method == "pearson" else
           "Spearman correlation of the stimulus means divided by the square root of both sides' reliabilities, "
           "these from the variance components of an additive unit + stimulus fit to each seed's and subject's "
           "ranks over the stimuli")
    return result.replace(method=f"correlation of noise-free stimulus effects: {how}; {result.method} "
                                 f"({n_resamples:,} resamples), {interval} interval")


CHANGE_ESTIMAND = ("the difference between two latent correlations with the same human data (e.g. the same seeds at "
                   "two training epochs): each the correlation of the model's noise-free stimulus effects with the "
                   "humans', over the population of stimuli")


def latent_correlation_difference(model_a, model_b, human, *, method: str = "pearson", n_resamples: int = 2000,
                                  seed=None, ci_level: float = 0.95) -> StatResult:
    """Difference of two models' latent (noise-free) correlations with the same humans, and its interval.

    Each side is :func:`latent_correlation` (noise variances from each side's
    own seeds or subjects); one stimulus bootstrap resamples the same stimuli
    for both, so noise the two models share stimulus by stimulus (the same
    seeds at two training epochs) is kept. A human side with one row (e.g.
    label entropy of all annotators) counts as noise-free, so the difference is
    then for these annotators' measure, attenuated by its noise on both sides.

    Parameters
    ----------
    model_a, model_b : array_like, shape (n_seeds, n_stimuli)
    human : array_like, shape (n_subjects, n_stimuli)
    method, n_resamples, seed, ci_level
        As in :func:`latent_correlation`; the percentile interval, and the
        two-sided bootstrap p-value of no difference from the same resamples.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> effect, own = rng.normal(size=300), rng.normal(size=300)
    >>> seeds = rng.normal(size=(3, 300))
    >>> human = effect + 2 * rng.normal(size=(10, 300))
    >>> result = latent_correlation_difference(effect + own + seeds, 0.2 * effect + own + seeds, human, seed=0,
    ...                                        n_resamples=500)
    >>> bool(result.ci_low > 0)
    True
    """
    statistic_a, parts_a = latent_correlation_statistic(model_a, human, method=method)
    statistic_b, parts_b = latent_correlation_statistic(model_b, human, method=method)
    if parts_a["n_stimuli_used"] != parts_b["n_stimuli_used"]:
        raise LatentInputError("the two models must cover the same stimuli as the human data")
    n = parts_a["n_stimuli_used"]
    uniform = np.full((1, n), 1.0 / n)
    estimates = float(statistic_a(uniform)[0]), float(statistic_b(uniform)[0])
    result = crossed_bootstrap(lambda w: statistic_a(w) - statistic_b(w), {"stimulus": n}, n_resamples=n_resamples,
                               seed=seed, ci_level=ci_level, interval="percentile", keep_distribution=True,
                               statistic_name=f"latent_{method}_difference", n=n, bounds=(-2.0, 2.0),
                               extra={"estimand": CHANGE_ESTIMAND, "estimate_a": estimates[0],
                                      "estimate_b": estimates[1],
                                      "reliability_model_a": parts_a["reliability_model"],
                                      "reliability_model_b": parts_b["reliability_model"],
                                      "reliability_human": parts_a["reliability_human"]})
    distribution = result.distribution[np.isfinite(result.distribution)]
    # two-sided bootstrap p-value of no difference, never 0 with finitely many resamples
    below, above = ((np.sum(side) + 1) / (distribution.size + 1) for side in (distribution <= 0, distribution >= 0))
    return result.replace(estimate=estimates[0] - estimates[1], p_value=float(min(1.0, 2 * min(below, above))),
                          distribution=None,
                          method=f"difference of two latent correlations (variance components, {method}); "
                                 f"{result.method} ({n_resamples:,} resamples), percentile interval")
