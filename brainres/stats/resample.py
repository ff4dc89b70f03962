"""Resampling engine: crossed bootstraps, intervals and permutation tests.

Resamples are represented by *weights*: for every resampled factor (seed,
stimulus, subject, ...) a row of ``counts / n`` per resample, where ``counts``
says how often each unit was drawn. A plug-in statistic (a mean, a correlation
across stimuli, ...) computed with these weights equals the statistic computed
on the resampled data with its duplicated units, so one weighted statistic
serves the bootstrap, the jackknife (one weight set to zero) and the full data
(equal weights) without ever copying data per resample.

Statistics passed to :func:`crossed_bootstrap` therefore take a dict
``{factor: weights}`` with ``weights`` of shape ``(batch, n_factor)`` (rows sum
to 1) and return an array of shape ``(batch,)``.

Multi-factor variance
---------------------
Resampling several crossed factors at once double counts their interaction
(each factor's resampling re-adds the interaction noise), so the plain crossed
bootstrap is too wide. For the linear case the bootstrap variance ``V_S`` of
resampling the factor set ``S`` is ``sum over non-empty U in S of P_U / n_U``
where ``P_U`` is the plug-in mean square of the sample effect of ``U``. The
Moebius inversion ``Q_W = sum over S in W of (-1)^{|W|-|S|} V_S`` isolates each
term; ``c_W = prod n_f / (n_f - 1)`` removes the plug-in bias; and the unbiased
sampling variance is ``sum over W of (-1)^{|W|+1} c_W Q_W``. For two factors this
is exactly rsatoolbox's small-sample dual-bootstrap formula
(``rsatoolbox.util.inference_util._dual_bootstrap``). The interval is then the
crossed bootstrap distribution shrunk about the estimate by
``sqrt(corrected / crossed variance)``; see ``docs/statistics.md``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy import special

from brainres.errors import BrainresError
from brainres.stats.result import StatResult

# Upper bound on the float64 elements one batch of resamples may allocate per
# factor-sized array; keeps peak memory near 8 * _BATCH_ELEMENTS bytes per array.
_BATCH_ELEMENTS = 2_000_000
JACKKNIFE_GROUPS = 1000  # factors with more units leave out groups of units in BCa's jackknife

INTERVALS = ("percentile", "bca", "bias_shifted_percentile")
# Former name of "bias_shifted_percentile", still accepted: it is not Efron's bias-corrected (BC) interval.
INTERVAL_ALIASES = {"bias_corrected": "bias_shifted_percentile"}
CORRECTIONS = ("dual", "dual_asymptotic", "none")


class ResamplingError(BrainresError, ValueError):
    """A resampling request that cannot be carried out."""


def as_generator(seed) -> tuple[np.random.Generator, int | None]:
    """Return ``(generator, recorded_seed)`` for an int seed or a Generator.

    Raises
    ------
    ResamplingError
        If ``seed`` is None: every random draw in brainres must be reproducible.
    """
    if isinstance(seed, np.random.Generator):
        return seed, None
    if seed is None:
        raise ResamplingError("seed is None; pass an integer seed or a numpy.random.Generator")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ResamplingError(f"seed must be an integer or a numpy.random.Generator, got {type(seed).__name__}")
    return np.random.default_rng(int(seed)), int(seed)


def stream_key(rng: np.random.Generator) -> int:
    """One 64-bit key from ``rng`` that fixes every draw of one factor's bootstrap."""
    return int(rng.integers(0, 2**64, dtype=np.uint64))


def draw_counts(key: int, n: int, size: int, first_row: int = 0) -> np.ndarray:
    """How often each of ``n`` units is drawn in resamples ``first_row ... first_row + size - 1``.

    Each resample draws ``n`` indices with replacement (as an index bootstrap
    does) from its own part of a counter-based stream keyed by ``key`` (see
    :mod:`brainres.stats.compiled`), so a resample's draws do not depend on
    the batch it falls in or on the number of threads. Returns int32 of
    shape ``(size, n)``.
    """
    from brainres.stats.kernels import compiled

    return compiled().bootstrap_counts(np.uint64(key), int(n), int(first_row), int(size))


def batch_size_for(n_units: int, requested: int | None = None, per_unit: int = 1) -> int:
    """Resamples per batch so that a ``(batch, n_units * per_unit)`` array stays bounded."""
    if requested is not None:
        if requested < 1:
            raise ResamplingError(f"batch_size must be at least 1, got {requested}")
        return int(requested)
    return max(1, _BATCH_ELEMENTS // max(1, n_units * per_unit))


def percentile_interval(distribution: np.ndarray, ci_level: float = 0.95) -> tuple[float, float]:
    """Equal-tailed percentile interval of a bootstrap distribution (NaNs ignored)."""
    _check_level(ci_level)
    values = _finite(distribution)
    alpha = (1 - ci_level) / 2
    low, high = np.percentile(values, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def jackknife_acceleration(jackknife_values: Sequence[np.ndarray]) -> float:
    """BCa acceleration from delete-one jackknife values.

    Parameters
    ----------
    jackknife_values : sequence of 1-d arrays
        One array per resampled factor: the statistic with each unit of that
        factor left out in turn. For crossed designs the influence values of
        all factors are pooled (the influence of a crossed design is the sum
        of per-factor components).
    """
    influence = []
    for values in jackknife_values:
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        if values.size:
            influence.append(values.mean() - values)
    if not influence:
        return 0.0
    pooled = np.concatenate(influence)
    denominator = 6.0 * np.sum(pooled**2) ** 1.5
    return float(np.sum(pooled**3) / denominator) if denominator > 0 else 0.0


def bca_interval(
    distribution: np.ndarray,
    estimate: float,
    jackknife_values: Sequence[np.ndarray],
    ci_level: float = 0.95,
) -> tuple[float, float]:
    """Bias-corrected and accelerated (BCa) interval, as in ``scipy.stats.bootstrap``.

    ``z0`` is the normal quantile of the share of resamples below the
    estimate, ties counted half (scipy's ``_percentile_of_score``:
    ``(#{theta* < theta} + #{theta* <= theta}) / (2 B)``); the acceleration
    comes from :func:`jackknife_acceleration`.
    """
    _check_level(ci_level)
    values = _finite(distribution)
    fraction_below = (np.sum(values < estimate) + np.sum(values <= estimate)) / (2 * values.size)
    if not 0 < fraction_below < 1:
        # Every resample on one side of the estimate: BCa is undefined.
        return math.nan, math.nan
    z0 = special.ndtri(fraction_below)
    acceleration = jackknife_acceleration(jackknife_values)
    alpha = (1 - ci_level) / 2
    levels = []
    for z_alpha in (special.ndtri(alpha), special.ndtri(1 - alpha)):
        shifted = z0 + z_alpha
        levels.append(special.ndtr(z0 + shifted / (1 - acceleration * shifted)))
    if not np.all(np.isfinite(levels)):
        return math.nan, math.nan
    low, high = np.percentile(values, [100 * levels[0], 100 * levels[1]])
    return float(low), float(high)


def corrected_variance(
    variances: Mapping[frozenset, float],
    sizes: Mapping[str, int],
    small_sample: bool = True,
) -> float:
    """Sampling variance of a crossed design from bootstraps of factor subsets.

    Parameters
    ----------
    variances : mapping of frozenset of factor names to float
        Bootstrap variance when exactly that set of factors is resampled; every
        non-empty subset of ``sizes`` must be present.
    sizes : mapping of factor name to int
        Number of units per factor.
    small_sample : bool, default True
        Apply the ``n / (n - 1)`` plug-in corrections (rsatoolbox's
        small-sample formula); False gives ``2 (V_A + V_B) - V_AB`` for two
        factors.

    Returns
    -------
    float
        The corrected variance, clipped to lie between the largest corrected
        single-factor variance and the variance of the all-factor bootstrap
        (as rsatoolbox clips).
    """
    factors = list(sizes)
    subsets = [frozenset(c) for k in range(1, len(factors) + 1) for c in itertools.combinations(factors, k)]
    missing = [sorted(s) for s in subsets if s not in variances]
    if missing:
        raise ResamplingError(f"corrected_variance needs the bootstrap variance of every factor subset; missing {missing}")
    total = 0.0
    for subset in subsets:
        moebius = sum(
            (-1) ** (len(subset) - len(inner)) * variances[frozenset(inner)]
            for k in range(1, len(subset) + 1)
            for inner in itertools.combinations(sorted(subset), k)
        )
        factor = math.prod(sizes[f] / (sizes[f] - 1) for f in subset) if small_sample else 1.0
        total += (-1) ** (len(subset) + 1) * factor * moebius
    singles = [
        variances[frozenset([f])] * (sizes[f] / (sizes[f] - 1) if small_sample else 1.0) for f in factors
    ]
    everything = variances[frozenset(factors)]
    return float(min(max(total, *singles), everything))


def crossed_bootstrap(
    statistic: Callable[[dict[str, np.ndarray]], np.ndarray],
    sizes: Mapping[str, int],
    *,
    resample: Sequence[str] | None = None,
    n_resamples: int = 10_000,
    seed=None,
    ci_level: float = 0.95,
    interval: str = "bca",
    correction: str = "dual",
    batch_size: int | None = None,
    keep_distribution: bool = False,
    statistic_name: str = "statistic",
    n: int | None = None,
    extra: dict | None = None,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> StatResult:
    """Bootstrap a weighted statistic over any combination of crossed factors.

    Parameters
    ----------
    statistic : callable
        ``statistic(weights) -> values``: ``weights`` maps every factor in
        ``sizes`` to an array ``(batch, n_factor)`` of non-negative weights
        summing to 1 per row; returns an array ``(batch,)``. Must be a plug-in
        statistic (its value for weights ``counts / n`` equals its value on
        the data with units repeated ``counts`` times).
    sizes : mapping of str to int
        Units per factor, e.g. ``{"seed": 10, "stimulus": 2000}``.
    resample : sequence of str, optional
        Factors to resample; default all of ``sizes``. The others keep equal
        weights (they are treated as fixed).
    n_resamples : int, default 10000
    seed : int or numpy.random.Generator
        Source of every random draw: one stream key per factor is taken from
        it, in the order of ``resample``, and resample ``r`` uses part ``r``
        of each factor's stream (see :func:`draw_counts`). The numbers are
        the same for any ``batch_size`` and number of threads.
    ci_level : float, default 0.95
    interval : {"bca", "percentile", "bias_shifted_percentile"}
        ``bias_shifted_percentile`` is the percentile interval shifted by
        twice the bootstrap bias (centred on ``estimate - bias``; not Efron's
        bias-corrected interval; the old name ``"bias_corrected"`` is still
        accepted). With it the reported ``estimate`` is the interval's centre,
        ``estimate - bias`` (the plug-in value is kept in
        ``extra["plug_in_estimate"]``), so estimate and interval are for the
        same quantity. It stays usable when
        nearly every resample falls on one side of the estimate, where BCa
        breaks down (e.g. resampling a few seeds or subjects whose noise
        attenuates a correlation).
    correction : {"dual", "dual_asymptotic", "none"}
        Multi-factor variance correction (ignored for one factor): "dual" uses
        the small-sample generalisation of rsatoolbox's dual bootstrap,
        "dual_asymptotic" the large-sample one, "none" keeps the plain crossed
        bootstrap (conservative).
    batch_size : int, optional
        Resamples evaluated at once; default keeps arrays near 16 MB.
    keep_distribution : bool, default False
        Store the (corrected) bootstrap distribution in the result.
    statistic_name, n, extra
        Recorded in the result.
    bounds : (float, float)
        Range of the statistic (e.g. ``(-1, 1)`` for a correlation); interval
        ends are clipped to it.

    Notes
    -----
    ``statistic`` may also offer ``statistic.evaluate_subsets(counts,
    subsets)``: given the int32 draw counts ``(batch, n_factor)`` of every
    resampled factor and the factor subsets the correction needs, it returns
    ``{subset: values}`` for all of them at once (or None to fall back to
    one call per subset), so work shared between subsets is done once.

    Returns
    -------
    StatResult
        ``extra`` also holds ``bootstrap_se`` (after correction),
        ``crossed_se`` (before) and, with a correction, ``variance_scale``.
    """
    sizes = {str(k): int(v) for k, v in sizes.items()}
    resample = list(sizes) if resample is None else [str(f) for f in resample]
    unknown = [f for f in resample if f not in sizes]
    if unknown or not resample or len(set(resample)) != len(resample):
        raise ResamplingError(f"resample must name distinct factors among {list(sizes)}, got {resample}")
    for factor in resample:  # a factor held fixed may have a single unit
        if sizes[factor] < 2:
            raise ResamplingError(f"factor {factor!r} has {sizes[factor]} unit(s); the bootstrap needs at least 2")
    interval = INTERVAL_ALIASES.get(interval, interval)
    if interval not in INTERVALS:
        raise ResamplingError(f"interval must be one of {INTERVALS}, got {interval!r}")
    if correction not in CORRECTIONS:
        raise ResamplingError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    if int(n_resamples) < 2:
        raise ResamplingError(f"n_resamples must be at least 2, got {n_resamples}")
    _check_level(ci_level)
    rng, recorded_seed = as_generator(seed)
    n_resamples = int(n_resamples)

    uniform = {f: np.full((1, size), 1.0 / size) for f, size in sizes.items()}
    estimate = float(np.asarray(statistic(uniform)).reshape(-1)[0])

    # Subsets whose bootstrap variance the correction needs (all non-empty ones).
    corrected = correction != "none" and len(resample) > 1
    subsets = [frozenset(resample)]
    if corrected:
        subsets = [frozenset(c) for k in range(1, len(resample) + 1) for c in itertools.combinations(resample, k)]
    per_batch = batch_size_for(max(sizes.values()), batch_size, per_unit=len(subsets))
    distributions = {s: np.empty(n_resamples) for s in subsets}
    keys = {f: stream_key(rng) for f in resample}
    evaluate_subsets = getattr(statistic, "evaluate_subsets", None)
    done = 0
    while done < n_resamples:
        size = min(per_batch, n_resamples - done)
        counts = {f: draw_counts(keys[f], sizes[f], size, first_row=done) for f in resample}
        values = evaluate_subsets(counts, subsets) if evaluate_subsets is not None else None
        if values is None:
            weights_of = {f: counts[f] / sizes[f] for f in resample}
            values = {}
            for subset in subsets:
                weights = {
                    f: weights_of[f] if f in subset else np.broadcast_to(uniform[f], (size, sizes[f]))
                    for f in sizes
                }
                values[subset] = statistic(weights)
        for subset in subsets:
            distributions[subset][done : done + size] = np.asarray(values[subset], dtype=float).reshape(size)
        done += size

    crossed = distributions[frozenset(resample)]
    crossed_variance = float(np.nanvar(crossed, ddof=1))
    distribution = crossed
    scale = 1.0
    if corrected:
        variances = {s: float(np.nanvar(d, ddof=1)) for s, d in distributions.items()}
        target = corrected_variance(
            variances, {f: sizes[f] for f in resample}, small_sample=(correction == "dual")
        )
        scale = math.sqrt(target / crossed_variance) if crossed_variance > 0 else 1.0
        # Shrink the spread about the bootstrap mean; the bias (a shift) is kept.
        centre = float(np.nanmean(crossed))
        distribution = centre + scale * (crossed - centre)
    bias = float(np.nanmean(distribution)) - estimate

    if interval == "percentile":
        ci_low, ci_high = percentile_interval(distribution, ci_level)
    elif interval == "bias_shifted_percentile":
        # Percentile interval moved by twice the bootstrap bias, so that it is
        # centred on the bias-shifted estimate (estimate - bias).
        ci_low, ci_high = percentile_interval(distribution - 2 * bias, ci_level)
    else:
        jackknife = [_jackknife(statistic, sizes, factor, batch_size) for factor in resample]
        ci_low, ci_high = bca_interval(distribution, estimate, jackknife, ci_level)

    ci_low, ci_high = (float(np.clip(v, *bounds)) if np.isfinite(v) else v for v in (ci_low, ci_high))
    described = " x ".join(resample)
    method = f"bootstrap over {described}"
    if len(resample) > 1:
        method = f"crossed bootstrap over {described}" + {
            "dual": ", dual-bootstrap variance correction (small-sample)",
            "dual_asymptotic": ", dual-bootstrap variance correction (asymptotic)",
            "none": ", uncorrected",
        }[correction]
    info = dict(extra or {})
    info["bootstrap_se"] = float(np.nanstd(distribution, ddof=1))
    info["crossed_se"] = math.sqrt(crossed_variance)
    info["bootstrap_bias"] = bias
    if interval == "bias_shifted_percentile":
        info["plug_in_estimate"] = estimate
        estimate = float(np.clip(estimate - bias, *bounds))
    if corrected:
        info["variance_scale"] = scale**2
    grouped = [f for f in resample if sizes[f] > JACKKNIFE_GROUPS]
    if interval == "bca" and grouped:
        method += (f"; BCa acceleration from a jackknife leaving out {JACKKNIFE_GROUPS:,} groups of "
                   f"{', '.join(grouped)} (unit i in group i mod {JACKKNIFE_GROUPS:,})")
    if interval == "bca" and math.isnan(ci_low):
        info["note"] = "BCa undefined: every resample fell on one side of the estimate; use interval='bias_shifted_percentile'"
    n_failed = int(np.sum(~np.isfinite(crossed)))
    if n_failed:
        info["n_failed_resamples"] = n_failed
    return StatResult(
        statistic=statistic_name,
        estimate=estimate,
        ci_low=ci_low,
        ci_high=ci_high,
        ci_level=ci_level,
        interval=interval,
        method=method,
        n=n,
        n_resamples=n_resamples,
        seed=recorded_seed,
        resampled=tuple(resample),
        extra=info,
        distribution=distribution if keep_distribution else None,
    )


def _jackknife(statistic, sizes, factor, batch_size):
    """Statistic with each unit of ``factor`` left out in turn (weights renormalised).

    Factors with more than ``JACKKNIFE_GROUPS`` units leave out groups of units
    instead (unit ``i`` in group ``i % JACKKNIFE_GROUPS``, no random draw): BCa's
    acceleration is a ratio of the third and second moments of the influence
    values, which a grouped jackknife estimates consistently, and the cost no
    longer grows with the square of the number of units. Up to that size the
    values are those of the delete-one jackknife, bit for bit.
    """
    n_units = sizes[factor]
    n_groups = min(n_units, JACKKNIFE_GROUPS)
    group = np.arange(n_units) % n_groups
    per_batch = batch_size_for(max(sizes.values()), batch_size)
    values = np.empty(n_groups)
    for start in range(0, n_groups, per_batch):
        stop = min(n_groups, start + per_batch)
        kept = (group[None, :] != np.arange(start, stop)[:, None]).astype(float)
        left_out = kept / kept.sum(axis=1, keepdims=True)
        weights = {
            f: left_out if f == factor else np.broadcast_to(np.full(size, 1.0 / size), (stop - start, size))
            for f, size in sizes.items()
        }
        values[start:stop] = np.asarray(statistic(weights), dtype=float).reshape(stop - start)
    return values


def permutation_test(
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    *,
    n_permutations: int = 10_000,
    seed=None,
    alternative: str = "two-sided",
    batch_size: int | None = None,
    keep_distribution: bool = False,
    statistic_name: str = "statistic",
    extra: dict | None = None,
) -> StatResult:
    """Permutation test by relabelling ``n`` units (e.g. stimuli of one side).

    Parameters
    ----------
    statistic : callable
        ``statistic(permutations) -> values`` with ``permutations`` an int
        array ``(batch, n)``; row ``k`` says which unit's label each position
        takes. The identity permutation gives the observed value.
    n : int
        Number of units permuted.
    n_permutations : int, default 10000
    seed : int or numpy.random.Generator
    alternative : {"two-sided", "greater", "less"}
        Two-sided compares absolute values.

    Returns
    -------
    StatResult
        ``p_value = (1 + #{as or more extreme}) / (1 + n_permutations)``.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ResamplingError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    if n < 2:
        raise ResamplingError(f"a permutation test needs at least 2 units, got {n}")
    rng, recorded_seed = as_generator(seed)
    observed = float(np.asarray(statistic(np.arange(n)[None, :])).reshape(-1)[0])
    per_batch = batch_size_for(n, batch_size)
    null = np.empty(int(n_permutations))
    done = 0
    while done < null.size:
        size = min(per_batch, null.size - done)
        permutations = rng.permuted(np.broadcast_to(np.arange(n), (size, n)), axis=1)
        null[done : done + size] = np.asarray(statistic(permutations), dtype=float).reshape(size)
        done += size
    # A tiny tolerance so permutations that tie the observed value count as extreme.
    tolerance = 1e-12 * max(1.0, abs(observed))
    if alternative == "two-sided":
        extreme = np.abs(null) >= abs(observed) - tolerance
    elif alternative == "greater":
        extreme = null >= observed - tolerance
    else:
        extreme = null <= observed + tolerance
    p_value = (1 + int(np.sum(extreme))) / (1 + null.size)
    return StatResult(
        statistic=statistic_name,
        estimate=observed,
        method=f"permutation test ({alternative}) over {n} units",
        p_value=p_value,
        n=n,
        n_resamples=null.size,
        seed=recorded_seed,
        resampled=("permutation",),
        extra=dict(extra or {}),
        distribution=null if keep_distribution else None,
    )


def _check_level(ci_level):
    if not 0 < ci_level < 1:
        raise ResamplingError(f"ci_level must lie strictly between 0 and 1, got {ci_level}")


def _finite(distribution):
    values = np.asarray(distribution, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if values.size < 2:
        raise ResamplingError("fewer than 2 finite bootstrap values; the statistic failed on almost every resample")
    return values
