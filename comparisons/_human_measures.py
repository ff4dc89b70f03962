"""The human side of a model-time comparison: one per-stimulus measure, its units and its reliability.

``time-vs-rt`` correlates per-stimulus model time with one of three human
measures (its ``measure`` option):

=================  ==========================  =================================================
measure            data (kind)                 reliability (noise ceiling) from
=================  ==========================  =================================================
``rt``             human trials (``rt``)       random halves of the subjects (mean RT per half)
``accuracy``       human trials (``correct``)  random halves of the subjects (accuracy per half)
``label_entropy``  human label counts          random halves of each stimulus's annotators,
                   (``human_labels``)          drawn from its counts (multivariate hypergeometric)
=================  ==========================  =================================================

Subject measures are ``(subject, stimulus)`` matrices and go through the
statistics engine's subject machinery (three-factor bootstrap, split-half
reliability over subjects, noise-corrected correlation). Label counts have no
subjects that saw every stimulus (CIFAR-10H: about 50 different annotators per
image), so their entropy has no subject factor to resample: the bootstrap is
over seeds and stimuli, and the ceiling comes from splitting each image's
annotators in two.

Entropy is of the label distribution (counts / total), in units of
``log(n_labels)`` (0: everyone chose the same label; 1: labels spread evenly).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import xarray as xr

from brainres.stats.kernels import rank_plan, spearman_fixed, weighted_pearson
from brainres.stats.reliability import split_halves, spearman_brown, step_up
from brainres.stats.resample import as_generator, crossed_bootstrap
from brainres.stats.result import StatResult
from brainres.comparisons._common import ComparisonError, per_subject

MEASURES = ("rt", "accuracy", "label_entropy")
NAMES = {"rt": "human RT", "accuracy": "human accuracy", "label_entropy": "human label entropy"}
UNITS = {"rt": "mean RT (s)", "accuracy": "proportion correct", "label_entropy": "normalised entropy"}


@dataclasses.dataclass(frozen=True)
class HumanMeasure:
    """One per-stimulus human measure with what its reliability needs.

    Attributes
    ----------
    measure : {"rt", "accuracy", "label_entropy"}
    stimulus_id : numpy.ndarray of str
    matrix : numpy.ndarray, shape (n_subjects, n_stimuli), or None
        Per-subject values (NaN where a subject has none); subject measures only.
    counts : numpy.ndarray, shape (n_stimuli, n_labels), or None
        Label counts; ``label_entropy`` only.
    """

    measure: str
    stimulus_id: np.ndarray
    matrix: np.ndarray | None = None
    counts: np.ndarray | None = None

    @property
    def name(self) -> str:
        """The measure in words, for headings and sentences ("human RT", ...)."""
        return NAMES[self.measure]

    @property
    def has_subjects(self) -> bool:
        return self.matrix is not None

    @property
    def n_units(self) -> int:
        """Subjects, or the median number of annotators per stimulus."""
        return int(self.matrix.shape[0]) if self.has_subjects else int(np.median(self.counts.sum(axis=1)))

    @property
    def unit(self) -> str:
        return "subject" if self.has_subjects else "annotator"

    def values(self) -> np.ndarray:
        """The per-stimulus measure (mean over subjects, or the entropy of all annotators' labels)."""
        if self.has_subjects:
            from brainres.stats.sparse import stimulus_means

            return stimulus_means(self.matrix)
        return label_entropy(self.counts)

    def select(self, stimulus_id) -> "HumanMeasure":
        """The same measure on these stimuli, in this order."""
        position = {s: i for i, s in enumerate(self.stimulus_id)}
        index = np.array([position[str(s)] for s in stimulus_id], dtype=int)
        return dataclasses.replace(
            self, stimulus_id=self.stimulus_id[index],
            matrix=None if self.matrix is None else self.matrix[:, index],
            counts=None if self.counts is None else self.counts[index])


def human_measure(data: xr.Dataset, measure: str, *, correct_only: bool = False, by_subject=per_subject) -> HumanMeasure:
    """Read one per-stimulus human measure from trials or label counts.

    Parameters
    ----------
    data : xarray.Dataset
        Human trials (``rt``, ``correct``) for ``rt`` and ``accuracy``; label
        counts (variable ``counts``, dims ``stimulus_id`` x ``label``, e.g.
        CIFAR-10H) for ``label_entropy``.
    measure : {"rt", "accuracy", "label_entropy"}
    correct_only : bool
        ``rt`` only: use correct trials only.
    by_subject : callable
        ``by_subject(trials, variable, correct_only=)`` -> ``(subject,
        stimulus_id)`` DataArray (the sparse variant for crowd-sourced designs).

    Examples
    --------
    >>> counts = xr.Dataset({"counts": (("stimulus_id", "label"), [[10, 0], [5, 5]])},
    ...                     coords={"stimulus_id": ["a", "b"]})
    >>> human_measure(counts, "label_entropy").values().round(3).tolist()
    [0.0, 1.0]
    """
    where = data.attrs.get("dataset_id", "the human data")
    if measure not in MEASURES:
        raise ComparisonError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    if measure == "label_entropy":
        if "counts" not in data:
            raise ComparisonError(f"measure 'label_entropy' needs human label counts (a 'counts' variable, kind "
                                  f"human_labels, e.g. cifar10h); {where} has variables {sorted(data.data_vars)}")
        if correct_only:
            raise ComparisonError("correct_only applies to measure 'rt' only; label counts have no trials")
        counts = np.asarray(data["counts"].transpose("stimulus_id", ...).values)
        if counts.ndim != 2 or not np.all(np.isfinite(counts)) or (counts < 0).any() or \
                not np.allclose(counts, np.rint(counts)):
            raise ComparisonError(f"{where}: 'counts' must be non-negative integers (stimulus_id x label)")
        counts = np.rint(counts).astype(np.int64)
        few = counts.sum(axis=1) < 2
        if few.any():
            ids = np.asarray(data["stimulus_id"].values).astype(str)[few]
            raise ComparisonError(f"{where}: {few.sum()} stimuli have fewer than 2 labels, so their annotators "
                                  f"cannot be split in halves: {', '.join(map(repr, ids[:8]))}; leave them out")
        return HumanMeasure(measure, np.asarray(data["stimulus_id"].values).astype(str), counts=counts)
    needed = "rt" if measure == "rt" else "correct"
    if needed not in data or "subject" not in data:
        raise ComparisonError(f"measure {measure!r} needs human trials with a {needed!r} variable; {where} has "
                              f"variables {sorted(data.data_vars)}" + (" (label counts: use measure = "
                                                                         "'label_entropy')" if "counts" in data else ""))
    if correct_only and measure != "rt":
        raise ComparisonError("correct_only applies to measure 'rt' only (accuracy of correct trials is 1)")
    if measure == "accuracy":
        # a missed response (no answer) is not a correct one, but it is not a wrong answer either: leave it out
        answered = data.isel(trial=np.isfinite(np.asarray(data["rt"].values, float))) if "rt" in data else data
        matrix = by_subject(answered, "correct")
    else:
        matrix = by_subject(data, "rt", correct_only=correct_only)
    return HumanMeasure(measure, np.asarray(matrix["stimulus_id"].values).astype(str), matrix=matrix.values)


# ----------------------------------------------------------------- label counts
def label_entropy(counts) -> np.ndarray:
    """Entropy of each row's label distribution, in units of ``log(n_labels)``.

    Parameters
    ----------
    counts : array_like, shape (..., n_labels)
        Non-negative counts (a row of zeros gives NaN).

    Examples
    --------
    >>> label_entropy([[4, 0, 0, 0], [1, 1, 1, 1], [2, 2, 0, 0]]).tolist()
    [0.0, 1.0, 0.5]
    """
    counts = np.asarray(counts, dtype=float)
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = counts / total
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    entropy = -terms.sum(axis=-1) / math.log(counts.shape[-1]) + 0.0  # + 0.0: no negative zero
    return np.where(total[..., 0] > 0, entropy, np.nan)


def split_label_counts(counts, *, n_splits: int, seed=None) -> tuple[np.ndarray, np.ndarray]:
    """Random halves of each stimulus's annotators, drawn from its label counts.

    A stimulus labelled by ``n`` annotators is split into ``floor(n / 2)`` and
    ``n - floor(n / 2)`` of them at random, without replacement: the first
    half's counts are a multivariate hypergeometric draw from the stimulus's
    counts (drawn label by label, each a hypergeometric draw from what is
    left), the second half is the rest.

    Returns
    -------
    first, second : numpy.ndarray, shape (n_splits, n_stimuli, n_labels)

    Examples
    --------
    >>> first, second = split_label_counts([[30, 20, 0], [1, 1, 49]], n_splits=4, seed=0)
    >>> bool((first + second == [[30, 20, 0], [1, 1, 49]]).all()), first.sum(axis=2).tolist()[0]
    (True, [25, 25])
    """
    counts = np.asarray(counts, dtype=np.int64)
    rng, _ = as_generator(seed)
    total = counts.sum(axis=1)
    wanted = np.broadcast_to(total // 2, (n_splits, counts.shape[0])).copy()
    left = np.broadcast_to(total, (n_splits, counts.shape[0])).copy()
    first = np.zeros((n_splits, *counts.shape), dtype=np.int64)
    for label in range(counts.shape[1] - 1):
        good = np.broadcast_to(counts[:, label], wanted.shape)
        draw = rng.hypergeometric(good, left - good, wanted) if wanted.any() else np.zeros_like(wanted)
        first[:, :, label] = draw
        wanted -= draw
        left -= good
    first[:, :, -1] = wanted  # what is still wanted comes from the last label
    return first, counts[None] - first


class _Rows:
    """Rows of per-stimulus values (n_rows, n_stimuli), sorted once for rank correlations."""

    def __init__(self, values, method):
        self.values = np.atleast_2d(np.asarray(values, dtype=float))
        self.plans = [rank_plan(row) for row in self.values] if method == "spearman" else None

    def take(self, index):
        taken = _Rows.__new__(_Rows)
        taken.values = self.values[index]
        taken.plans = None if self.plans is None else [self.plans[i] for i in index]
        return taken


def _correlation(x: _Rows, y: _Rows, weights):
    """Weighted correlation across stimuli of row i of ``x`` with row i of ``y``, per weight row: (n_weights, n_rows)."""
    weights = np.atleast_2d(weights)
    if x.plans is None:
        return np.stack([weighted_pearson(a[None], b[None], weights) for a, b in zip(x.values, y.values)], axis=1)
    return np.stack([spearman_fixed(a, b, weights) for a, b in zip(x.plans, y.plans)], axis=1)


def _interval(interval, n_stimuli):
    if interval is None:
        return "bca" if n_stimuli <= 2000 else "percentile"
    if interval not in ("bca", "percentile"):
        raise ComparisonError(f"interval must be 'bca' or 'percentile', got {interval!r}")
    return interval


def _check_method(method):
    if method not in ("pearson", "spearman"):
        raise ComparisonError(f"method must be 'spearman' or 'pearson', got {method!r}")


def label_split_half_reliability(counts, *, method: str = "spearman", n_splits: int = 1000, n_resamples: int = 2000,
                                 bootstrap_splits: int = 100, seed=None, ci_level: float = 0.95,
                                 interval: str | None = None) -> StatResult:
    """Split-half reliability of per-stimulus label entropy, from halves of each stimulus's annotators.

    Every split draws random halves of each stimulus's annotators
    (:func:`split_label_counts`), takes the entropy of each half's labels and
    correlates the halves across stimuli; the correlation is stepped up to the
    full number of annotators with Spearman-Brown ``2 r / (1 + r)`` (halves of
    a stimulus differ by at most one annotator). The estimate is the mean over
    splits; its interval is a bootstrap over stimuli (see ``interval``) that recomputes the
    split correlations (``bootstrap_splits`` of them) on every resample.

    Estimand: the reliability of the entropy of all of a stimulus's labels
    (its correlation with the entropy of labels from as many other
    annotators), over the population of stimuli. Entropy is not a mean over
    annotators, so the step-up treats the entropy of ``n`` labels like a mean
    of ``n`` parallel measurements: an approximation that the simulation in
    ``tests/comparisons/test_human_measures.py`` checks.

    Parameters
    ----------
    counts : array_like, shape (n_stimuli, n_labels)
        Non-negative integer label counts.
    method : {"spearman", "pearson"}
    n_splits, n_resamples, bootstrap_splits, seed, ci_level
        As in :func:`brainres.stats.reliability.split_half_reliability`.
    interval : {"bca", "percentile"}, optional
        Default: BCa up to 2,000 stimuli, percentile above (BCa's jackknife
        recomputes the statistic once per stimulus, and its acceleration
        shrinks like one over the square root of the number of stimuli).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet(np.full(10, 0.3), size=200)
    >>> counts = np.stack([rng.multinomial(50, row) for row in p])
    >>> result = label_split_half_reliability(counts, n_splits=50, n_resamples=200, seed=1)
    >>> 0.5 < result.estimate < 1 and result.ci_low < result.estimate < result.ci_high
    True
    """
    _check_method(method)
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] < 3:
        raise ComparisonError(f"label counts must be (n_stimuli >= 3, n_labels), got shape {counts.shape}")
    rng, recorded_seed = as_generator(seed)
    first, second = split_label_counts(counts, n_splits=n_splits, seed=rng)
    first, second = _Rows(label_entropy(first), method), _Rows(label_entropy(second), method)
    n = counts.shape[0]
    per_split = spearman_brown(_correlation(first, second, np.full((1, n), 1.0 / n))[0])
    chosen = np.arange(min(bootstrap_splits, n_splits))
    boot_first, boot_second = first.take(chosen), second.take(chosen)

    def statistic(weights):
        return np.nanmean(spearman_brown(_correlation(boot_first, boot_second, weights["stimulus"])), axis=1)

    annotators = int(np.median(counts.sum(axis=1)))
    extra = {"unit": "annotator", "n_units": annotators, "n_splits": int(n_splits),
             "split_sd": float(np.nanstd(per_split, ddof=1)) if n_splits > 1 else math.nan,
             "estimand": f"the {method} reliability of the entropy of each stimulus's labels (a median of {annotators} "
                         "annotators; its correlation with the entropy of as many other annotators' labels), over "
                         "the population of stimuli"}
    result = crossed_bootstrap(statistic, {"stimulus": n}, n_resamples=n_resamples, seed=rng, ci_level=ci_level,
                               interval=_interval(interval, n), statistic_name=f"split_half_reliability_{method}", n=n,
                               bounds=(-1.0, 1.0), extra=extra)
    return result.replace(
        estimate=float(np.nanmean(per_split)), seed=recorded_seed,
        method=f"split-half over each stimulus's annotators ({n_splits} random splits drawn from the label counts, "
               "multivariate hypergeometric), stepped up to all annotators (Spearman-Brown); " + result.method)


def label_disattenuated_correlation(model, counts, *, method: str = "spearman", n_splits: int = 1000,
                                    n_resamples: int = 2000, bootstrap_splits: int = 100, seed=None,
                                    ci_level: float = 0.95, interval: str | None = None) -> StatResult:
    """Noise-corrected correlation of model time with label entropy: ``r / sqrt(rel_human * rel_model)``.

    ``r`` is the correlation of the seed-mean model measure with the entropy
    of all labels; ``rel_human`` the annotator split-half reliability
    (:func:`label_split_half_reliability`), ``rel_model`` the split-half
    reliability over seeds (stepped up to all seeds by the parallel-units
    model; a single seed counts as noise-free). The interval is a
    bootstrap over stimuli (see ``interval``) recomputing ``r`` and both reliabilities on the
    same resampled stimuli and splits. Clipped to ``[-1, 1]``.

    Estimand: the correlation, over the population of stimuli, of the model's
    expected measure over infinitely many seeds with the entropy of the
    stimulus's label distribution over infinitely many annotators.

    Parameters
    ----------
    model : array_like, shape (n_seeds, n_stimuli)
    counts : array_like, shape (n_stimuli, n_labels)
    method, n_splits, n_resamples, bootstrap_splits, seed, ci_level, interval
        As in :func:`label_split_half_reliability`.
    """
    _check_method(method)
    model = np.atleast_2d(np.asarray(model, dtype=float))
    counts = np.asarray(counts)
    if model.shape[1] != counts.shape[0]:
        raise ComparisonError(f"model has {model.shape[1]} stimuli but the label counts have {counts.shape[0]}")
    rng, recorded_seed = as_generator(seed)
    n = counts.shape[0]
    first, second = split_label_counts(counts, n_splits=n_splits, seed=rng)
    first, second = _Rows(label_entropy(first), method), _Rows(label_entropy(second), method)
    human = _Rows(label_entropy(counts), method)
    model_mean = _Rows(model.mean(axis=0), method)
    if model.shape[0] > 1:
        masks, _ = split_halves(model.shape[0], n_splits=n_splits, seed=rng)
        model_first = _Rows(np.stack([model[m].mean(axis=0) for m in masks]), method)
        model_second = _Rows(np.stack([model[~m].mean(axis=0) for m in masks]), method)
        sizes = masks.sum(axis=1)
    boot = np.arange(min(bootstrap_splits, n_splits))
    boot_model = np.arange(min(bootstrap_splits, masks.shape[0])) if model.shape[0] > 1 else None

    def parts(weights, human_splits, model_splits):
        raw = _correlation(model_mean, human, weights)[:, 0]
        rel_h = np.nanmean(spearman_brown(_correlation(first.take(human_splits), second.take(human_splits), weights)),
                           axis=1)
        if model.shape[0] > 1:
            r = _correlation(model_first.take(model_splits), model_second.take(model_splits), weights)
            rel_m = np.nanmean(step_up(r, sizes[model_splits], model.shape[0] - sizes[model_splits], model.shape[0]),
                               axis=1)
        else:
            rel_m = np.ones_like(rel_h)
        return raw, rel_h, rel_m

    def corrected(raw, rel_h, rel_m):
        with np.errstate(invalid="ignore", divide="ignore"):
            # no reliability left: the corrected correlation is at its bound
            return np.clip(np.where(rel_h * rel_m > 0, raw / np.sqrt(np.abs(rel_h * rel_m)), np.sign(raw)), -1, 1)

    every_model = np.arange(masks.shape[0]) if model.shape[0] > 1 else None
    raw, rel_h, rel_m = (float(v[0]) for v in parts(np.full((1, n), 1.0 / n), np.arange(n_splits), every_model))
    extra = {"estimand": "the correlation, over the population of stimuli, of the model's expected measure over "
                         "infinitely many seeds with the entropy of the stimulus's label distribution over infinitely "
                         "many annotators",
             "raw_r": raw, "reliability_human": rel_h, "reliability_model": rel_m,
             "attenuation": math.sqrt(rel_h * rel_m) if rel_h * rel_m > 0 else math.nan,
             "n_seeds": int(model.shape[0]), "unit": "annotator"}
    result = crossed_bootstrap(lambda w: corrected(*parts(w["stimulus"], boot, boot_model)), {"stimulus": n},
                               n_resamples=n_resamples, seed=rng, ci_level=ci_level, interval=_interval(interval, n),
                               statistic_name=f"disattenuated_{method}", n=n, bounds=(-1.0, 1.0), extra=extra)
    return result.replace(
        estimate=float(corrected(np.array(raw), np.array(rel_h), np.array(rel_m))), seed=recorded_seed,
        method="r / sqrt(split-half reliabilities: annotator halves drawn from the label counts, seed halves); "
               + result.method)


# ------------------------------------------------------------ per measure
def reliability_and_correction(human: HumanMeasure, model_matrix: np.ndarray, *, method: str, n_splits: int,
                               n_resamples: int, seed: int, ci_level: float) -> tuple[StatResult, StatResult]:
    """The noise ceiling's reliability and the noise-corrected correlation that fit the measure.

    Subject measures: split halves of the subjects (``split_half_reliability``)
    and the engine's ``disattenuated_correlation``; label entropy: split
    halves of each stimulus's annotators (:func:`label_split_half_reliability`,
    :func:`label_disattenuated_correlation`).
    """
    from brainres.stats import disattenuated_correlation, split_half_reliability

    if human.has_subjects:
        reliability = split_half_reliability(human.matrix, method=method, n_splits=n_splits,
                                             n_resamples=n_resamples, seed=seed, ci_level=ci_level)
        corrected = disattenuated_correlation(model_matrix, human.matrix, method=method, n_splits=n_splits,
                                              n_resamples=n_resamples, seed=seed, ci_level=ci_level)
    else:
        reliability = label_split_half_reliability(human.counts, method=method, n_splits=n_splits,
                                                   n_resamples=n_resamples, seed=seed, ci_level=ci_level)
        corrected = label_disattenuated_correlation(model_matrix, human.counts, method=method, n_splits=n_splits,
                                                    n_resamples=n_resamples, seed=seed, ci_level=ci_level)
    return reliability, corrected


def reliability_sentence(human: HumanMeasure, reliability: StatResult, n_splits: int) -> str:
    """How the noise ceiling of this measure was made, for the methods text."""
    if human.has_subjects:
        return (f"split-half reliability of per-stimulus {human.name} over {reliability.extra.get('n_splits', n_splits)} "
                f"{'(all distinct)' if reliability.extra.get('exhaustive_splits') else 'random'} subject splits, "
                "stepped up to all subjects")
    return (f"split-half reliability of per-stimulus {human.name} over {n_splits} random splits of each stimulus's "
            f"annotators (a median of {human.n_units}; halves drawn from the label counts without replacement, "
            "multivariate hypergeometric), stepped up to all annotators (Spearman-Brown)")
