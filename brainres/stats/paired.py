"""Paired comparison of two models' correlations with the same human data.

Two models measured on the same stimuli and compared with the same subjects
share the stimulus and subject noise of their correlations; an interval on
the difference has to resample those once for both. The bootstrap here is the
crossed bootstrap of :func:`~brainres.stats.correlate.bootstrap_correlation`
with one more factor: the stimuli and subjects are shared, and each model's
seeds are a factor of their own (``seed_a``, ``seed_b``), because the two
models were trained independently. The dual-bootstrap variance correction
then applies over all of them, as it does for one correlation.
"""

from __future__ import annotations

import numpy as np

from brainres.stats.correlate import CorrelationInputError, correlation_statistic
from brainres.stats.resample import INTERVAL_ALIASES, crossed_bootstrap
from brainres.stats.result import StatResult

SHARED = ("stimulus", "subject")
DIFFERENCE_ESTIMAND = ("the difference between two models' correlations with the humans' mean measure, over the "
                       "population of stimuli, for each model's expected measure over infinitely many seeds and "
                       "the humans' over infinitely many subjects (calibrated: the bias-shifted interval covers "
                       "both this noise-free difference and the difference at the study's design, "
                       "docs/statistics.md)")


def bootstrap_correlation_difference(
    model_a,
    model_b,
    human,
    *,
    method: str = "spearman",
    n_resamples: int = 10_000,
    seed=None,
    ci_level: float = 0.95,
    interval: str = "bias_shifted_percentile",
    correction: str = "dual",
    keep_distribution: bool = False,
    paired_seeds: bool = False,
) -> StatResult:
    """Interval and p-value for ``corr(model_a, human) - corr(model_b, human)``.

    Each correlation is that of the model's mean over its seeds with the mean
    of the subjects, as in :func:`~brainres.stats.bootstrap_correlation`. One
    resample draws stimuli and subjects once for both models and each model's
    seeds separately.

    Parameters
    ----------
    model_a, model_b : array_like, shape (n_seeds, n_stimuli)
        The two models' per-stimulus measure, one row per seed (seed counts may
        differ); the stimuli in the same order as ``human``'s columns.
    human : array_like, shape (n_subjects, n_stimuli)
        NaN where a subject has no trial of a stimulus.
    method : {"spearman", "pearson", "kendall"}
    n_resamples, seed, ci_level, correction, keep_distribution
        See :func:`~brainres.stats.resample.crossed_bootstrap`; factors with a
        single unit (one seed, one subject) are held fixed.
    paired_seeds : bool
        The two are the same seeds (row ``i`` of both is one training run, e.g.
        at two points of its training): one seed factor, drawn once for both.
        Not calibrated at few seeds: at 3 seeds it covered the noise-free
        change in 87 % of simulated studies (docs/statistics.md); for a change
        across training use ``latent_correlation_difference``.
    interval : {"bias_shifted_percentile", "bca", "percentile"}
        Default ``bias_shifted_percentile`` (the percentile interval shifted
        by twice the bootstrap bias), as for one correlation: few seeds and
        subjects attenuate both correlations, and the bootstrap bias of the
        difference estimates how unequally. Calibrated in
        ``docs/experiments/calibrate_time_vs_rt.py`` (docs/statistics.md).

    Returns
    -------
    StatResult
        ``estimate`` is the observed difference (the bias-shifted interval's
        centre is ``extra["plug_in_estimate"] - extra["bootstrap_bias"]``);
        ``extra["estimand"]`` says what the interval covers; ``p_value`` the two-sided
        bootstrap p-value of the same (corrected, bias-shifted) distribution
        the interval comes from (at least ``2 / (n_resamples + 1)``), so
        ``p < 1 - ci_level`` when the interval excludes zero.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> difficulty = rng.normal(size=60)
    >>> human = difficulty + rng.normal(size=(10, 60))
    >>> close = difficulty + 0.5 * rng.normal(size=(3, 60))
    >>> far = difficulty + 3.0 * rng.normal(size=(3, 60))
    >>> result = bootstrap_correlation_difference(close, far, human, n_resamples=2000, seed=1)
    >>> result.estimate > 0 and result.ci_low > 0
    True
    """
    stat_a, sizes_a = correlation_statistic(model_a, human, method=method)
    stat_b, sizes_b = correlation_statistic(model_b, human, method=method)
    if sizes_a["stimulus"] != sizes_b["stimulus"]:
        raise CorrelationInputError(
            f"the two models have {sizes_a['stimulus']} and {sizes_b['stimulus']} stimuli; a paired comparison "
            "needs both on the human data's stimuli, in the same order")
    if paired_seeds and sizes_a["seed"] != sizes_b["seed"]:
        raise CorrelationInputError(f"paired seeds need the same seeds on both sides, got {sizes_a['seed']} and "
                                    f"{sizes_b['seed']}")
    sizes = {f: sizes_a[f] for f in SHARED}
    seed_factor = {"a": "seed", "b": "seed"} if paired_seeds else {"a": "seed_a", "b": "seed_b"}
    sizes.update({seed_factor["a"]: sizes_a["seed"], seed_factor["b"]: sizes_b["seed"]})
    resample = [f for f in sizes if sizes[f] > 1]
    sides = {"a": stat_a, "b": stat_b}

    def own_weights(weights, side):
        """The weights one model's statistic sees: the shared factors and its own seeds."""
        return {"stimulus": weights["stimulus"], "subject": weights["subject"], "seed": weights[seed_factor[side]]}

    def statistic(weights):
        return sides["a"](own_weights(weights, "a")) - sides["b"](own_weights(weights, "b"))

    uniform = {f: np.full((1, n), 1.0 / n) for f, n in sizes.items()}
    observed = {side: float(np.asarray(sides[side](own_weights(uniform, side))).reshape(-1)[0]) for side in sides}

    if hasattr(stat_a, "evaluate_subsets") and hasattr(stat_b, "evaluate_subsets"):

        def evaluate_subsets(counts, subsets):
            """Each model's compiled pass once per batch; a subset's value is the two sides' values at
            the factors each side has (a side none of whose factors is resampled keeps its estimate)."""
            batch = next(iter(counts.values())).shape[0]
            values = {}
            for side, stat in sides.items():
                renamed = {("seed" if f == seed_factor[side] else f): c for f, c in counts.items()
                           if f in SHARED or f == seed_factor[side]}
                needed = {_own_subset(s, seed_factor[side]) for s in subsets} - {frozenset()}
                values[side] = stat.evaluate_subsets(renamed, list(needed)) if needed else {}
                values[side][frozenset()] = np.full(batch, observed[side])
            return {s: values["a"][_own_subset(s, seed_factor["a"])] - values["b"][_own_subset(s, seed_factor["b"])]
                    for s in subsets}

        statistic.evaluate_subsets = evaluate_subsets

    result = crossed_bootstrap(
        statistic, sizes, resample=resample, n_resamples=n_resamples, seed=seed, ci_level=ci_level,
        interval=interval, correction=correction, keep_distribution=True, statistic_name=f"{method} difference",
        n=sizes["stimulus"], bounds=(-2.0, 2.0),
        extra={"n_seeds_a": sizes_a["seed"], "n_seeds_b": sizes_b["seed"], "n_subjects": sizes["subject"],
               "paired_seeds": paired_seeds,
               "estimate_a": observed["a"], "estimate_b": observed["b"], "estimand": DIFFERENCE_ESTIMAND})
    distribution = result.distribution[np.isfinite(result.distribution)]
    if INTERVAL_ALIASES.get(interval, interval) == "bias_shifted_percentile":
        distribution = distribution - 2 * result.extra["bootstrap_bias"]
    # (count + 1) / (n + 1): a bootstrap p-value is never 0 with finitely many resamples
    below, above = ((np.sum(side) + 1) / (distribution.size + 1) for side in (distribution <= 0, distribution >= 0))
    p_value = float(min(1.0, 2 * min(below, above)))
    # The observed difference is the estimate: the interval is calibrated for the difference at the study's design
    # as well as for the noise-free one (docs/statistics.md), and the observed difference estimates the former.
    return result.replace(estimate=observed["a"] - observed["b"], p_value=p_value,
                          distribution=result.distribution if keep_distribution else None)


def _own_subset(subset, seed_factor):
    """The factors of ``subset`` one model depends on, in its own names."""
    return frozenset("seed" if f == seed_factor else f for f in subset if f in SHARED or f == seed_factor)
