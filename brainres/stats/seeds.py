"""Summaries over training seeds: what a configuration does, and how two configurations differ.

The estimand of :func:`seed_summary` is the mean of a measure over the
distribution of training seeds of one configuration, on the same task data: a
new seed drawn the same way would scatter around it. With the handful of seeds
labs run (3 to 10), a percentile bootstrap over seeds undercovers (it cannot
see more spread than the few seeds show), so the default interval is Student's
t on the seed values, which is exact when they are normal and robust enough
for means. A bootstrap interval is available for comparison.

:func:`seed_difference` compares two configurations: paired (the same seeds,
so the same initial draws and data order, differenced seed by seed) when the
seeds match, Welch's t otherwise.

Examples
--------
>>> seed_summary([0.81, 0.84, 0.79, 0.86, 0.83], statistic="accuracy").estimate
0.826
>>> round(seed_difference([0.9, 0.8, 0.85], [0.7, 0.75, 0.7], statistic="accuracy").estimate, 3)
0.133
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as scipy_stats

from brainres.errors import BrainresError
from brainres.stats.result import StatResult

ESTIMAND = "the mean over training seeds of this configuration (new seeds, same task data)"


class SeedSummaryError(BrainresError, ValueError):
    """Seed values that cannot be summarised (none finite, mismatched pairs)."""


def _finite(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        raise SeedSummaryError(f"{name}: no finite value to summarise (got {array.tolist()})")
    return finite


def _t_interval(values: np.ndarray, ci_level: float, null: float | None) -> tuple[float, float, float]:
    """Student t interval of the mean and, when ``null`` is given, the two-sided p-value of mean = null."""
    n = values.size
    mean = float(values.mean())
    if n < 2:
        return math.nan, math.nan, math.nan
    se = float(values.std(ddof=1)) / math.sqrt(n)
    if se == 0:
        p = math.nan if null is None else (0.0 if mean != null else 1.0)
        return mean, mean, p
    half = scipy_stats.t.ppf(0.5 + ci_level / 2, n - 1) * se
    p = math.nan if null is None else float(2 * scipy_stats.t.sf(abs(mean - null) / se, n - 1))
    return mean - half, mean + half, p


def seed_summary(values, *, statistic: str = "mean", ci_level: float = 0.95, interval: str = "t",
                 null: float | None = None, n_resamples: int = 10_000, seed: int = 0,
                 extra: dict | None = None) -> StatResult:
    """Mean of a measure over training seeds, with its interval.

    Parameters
    ----------
    values : array-like
        One value per seed (non-finite values are left out, and ``n`` says so).
    statistic : str
        Name of the measure (``"accuracy"``...), recorded.
    ci_level : float
    interval : {"t", "percentile"}
        Student's t over seeds (default), or a percentile bootstrap of seeds.
    null : float, optional
        Test the mean against this value (t only): chance for an accuracy, 0 for a difference.
    n_resamples, seed : int
        For the bootstrap.
    extra : dict, optional
        Further columns (a label, the configuration's knobs).

    Returns
    -------
    StatResult
        ``estimate`` the mean over seeds; ``p_value`` of mean = ``null`` (t only, when given);
        ``n`` the number of seeds; ``extra`` holds ``estimand``, ``sd`` and
        ``n_unit = "seeds"``.
    """
    values = _finite(values, statistic)
    n = values.size
    common = dict(statistic=statistic, estimate=float(values.mean()), ci_level=ci_level, n=n,
                  extra={"estimand": ESTIMAND, "sd": float(values.std(ddof=1)) if n > 1 else math.nan,
                         "n_unit": "seeds", **(extra or {})})
    if interval == "t":
        low, high, p = _t_interval(values, ci_level, null)
        return StatResult(**common, ci_low=low, ci_high=high, p_value=p, interval="t" if n > 1 else "",
                          method=f"mean over {n} training seeds, Student t interval (df = {n - 1})")
    if interval == "percentile":
        from brainres.stats.resample import crossed_bootstrap

        if n < 2:
            return StatResult(**common, method="mean over 1 training seed (no interval)")
        result = crossed_bootstrap(lambda weights: weights["seed"] @ values, {"seed": n}, n_resamples=n_resamples,
                                   seed=seed, ci_level=ci_level, interval="percentile", statistic_name=statistic)
        return StatResult(**common, ci_low=result.ci_low, ci_high=result.ci_high, interval="percentile",
                          n_resamples=n_resamples, seed=seed, resampled=("seed",),
                          method=f"mean over {n} training seeds, percentile bootstrap of seeds")
    raise SeedSummaryError(f"interval must be 't' or 'percentile', got {interval!r}")


def seed_difference(first, second, *, statistic: str = "mean", paired: bool | None = None, ci_level: float = 0.95,
                    extra: dict | None = None) -> StatResult:
    """Difference of means over seeds between two configurations (``first - second``).

    Parameters
    ----------
    first, second : array-like
        Per-seed values of the two configurations. Paired: the same seeds in
        the same order (the difference is taken seed by seed); otherwise
        independent samples.
    paired : bool, optional
        Default: paired when both have the same length.

    Returns
    -------
    StatResult
        Student t interval of the mean paired difference, or Welch's interval
        of the difference of means; ``p_value`` of no difference.
    """
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    paired = first.shape == second.shape if paired is None else paired
    if paired:
        if first.shape != second.shape:
            raise SeedSummaryError(f"{statistic}: paired seeds need equal lengths, got {first.size} and {second.size}")
        result = seed_summary(first - second, statistic=f"{statistic} difference", ci_level=ci_level, null=0.0,
                              extra=extra)
        return result.replace(method=result.method.replace("mean over", "paired difference over"),
                              extra={**result.extra, "estimand": "the mean over training seeds of the per-seed "
                                                                 "difference between the two configurations"})
    a, b = _finite(first, statistic), _finite(second, statistic)
    test = scipy_stats.ttest_ind(a, b, equal_var=False)
    interval = test.confidence_interval(ci_level)
    return StatResult(statistic=f"{statistic} difference", estimate=float(a.mean() - b.mean()),
                      ci_low=float(interval.low), ci_high=float(interval.high), ci_level=ci_level, interval="welch_t",
                      p_value=float(test.pvalue), n=int(min(a.size, b.size)),
                      method=f"difference of means over {a.size} and {b.size} independent training seeds, Welch t",
                      extra={"estimand": "the difference between the two configurations' means over training seeds",
                             "n_unit": "seeds", **(extra or {})})
