"""The human side of a model-time comparison: one per-stimulus measure, its units and its reliability.

``time-vs-rt`` correlates per-stimulus model time with one of three human
measures (its ``measure`` option):

=================  ==========================  =================================================
measure            data (kind)                 reliability (noise ceiling) from
=================  ==========================  =================================================
``rt``             human trials (``rt``)       random halves of the subjects (mean RT per half)
``accuracy``       human trials (``correct``)  random halves of the subjects (accuracy per half)
``accuracy``       human label counts          disjoint random subsets of each stimulus's
                   (``human_labels``)          annotators (share choosing its category per
                                               subset), extrapolated to all annotators
``label_entropy``  human label counts          disjoint random subsets of each stimulus's
                   (``human_labels``)          annotators, drawn from its counts (multivariate
                                               hypergeometric), extrapolated to all annotators
=================  ==========================  =================================================

Subject measures are ``(subject, stimulus)`` matrices and go through the
statistics engine's subject machinery (three-factor bootstrap, split-half
reliability over subjects, noise-corrected correlation). Label counts have no
subjects that saw every stimulus (CIFAR-10H: about 50 different annotators per
image), so their measures have no subject factor to resample: the bootstrap is
over seeds and stimuli, and the ceiling comes from disjoint subsets of each
image's annotators, extrapolated to all of them.

Entropy is of the label distribution (counts / total), in units of
``log(n_labels)`` (0: everyone chose the same label; 1: labels spread evenly).
The label-count machinery is in ``comparisons/_label_counts.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from brainres.stats.result import StatResult
from brainres.comparisons._common import ComparisonError, per_subject
from brainres.comparisons._annotator_subsets import MIN_ANNOTATORS
from brainres.comparisons._label_counts import (
    SUMMARIES, category_counts, label_disattenuated_correlation, label_split_half_reliability,
)

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
        return SUMMARIES[self.measure][0](self.counts)

    def select(self, stimulus_id) -> "HumanMeasure":
        """The same measure on these stimuli, in this order."""
        position = {s: i for i, s in enumerate(self.stimulus_id)}
        index = np.array([position[str(s)] for s in stimulus_id], dtype=int)
        return dataclasses.replace(
            self, stimulus_id=self.stimulus_id[index],
            matrix=None if self.matrix is None else self.matrix[:, index],
            counts=None if self.counts is None else self.counts[index])


def human_measure(data: xr.Dataset, measure: str, *, correct_only: bool = False, by_subject=per_subject,
                  categories: xr.DataArray | None = None) -> HumanMeasure:
    """Read one per-stimulus human measure from trials or label counts.

    Parameters
    ----------
    data : xarray.Dataset
        Human trials (``rt``, ``correct``) for ``rt`` and ``accuracy``; label
        counts (variable ``counts``, dims ``stimulus_id`` x ``label``, e.g.
        CIFAR-10H) for ``label_entropy``, and for ``accuracy`` as the share of
        each stimulus's annotators who chose its category.
    measure : {"rt", "accuracy", "label_entropy"}
    correct_only : bool
        ``rt`` only: use correct trials only.
    by_subject : callable
        ``by_subject(trials, variable, correct_only=)`` -> ``(subject,
        stimulus_id)`` DataArray (the sparse variant for crowd-sourced designs).
    categories : xarray.DataArray, optional
        Each stimulus's category (along ``stimulus_id``; a model export's
        ``category``): what counts as correct for ``accuracy`` from label
        counts, whose labels are named by the ``label_name`` coordinate.

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
        ids = np.asarray(data["stimulus_id"].values).astype(str)
        _check_annotators(counts, ids, where)
        return HumanMeasure(measure, ids, counts=counts)
    if measure == "accuracy" and "counts" in data and "correct" not in data:
        return _label_accuracy(data, categories, where)
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


def _label_accuracy(data: xr.Dataset, categories, where: str) -> HumanMeasure:
    """Per stimulus, the annotators who chose its category and those who did not (as two-column counts)."""
    if categories is None:
        raise ComparisonError(f"measure 'accuracy' from label counts ({where}) needs each stimulus's category")
    if "label_name" not in data.coords:
        raise ComparisonError(f"{where}: label counts need a 'label_name' coordinate to score the stimuli's categories")
    ids = np.asarray(data["stimulus_id"].values).astype(str)
    known = set(np.asarray(categories["stimulus_id"].values).astype(str))
    data = data.isel(stimulus_id=np.flatnonzero(np.isin(ids, list(known))))
    ids = np.asarray(data["stimulus_id"].values).astype(str)
    counts = np.asarray(data["counts"].transpose("stimulus_id", ...).values)
    chosen = categories.assign_coords(stimulus_id=np.asarray(categories["stimulus_id"].values).astype(str)).sel(
        stimulus_id=ids).values
    two = category_counts(np.rint(counts).astype(np.int64), data["label_name"].values, chosen)
    _check_annotators(two, ids, where)
    return HumanMeasure("accuracy", ids, counts=two)


def _check_annotators(counts, ids, where: str) -> None:
    """Every stimulus needs 4 labels: the reliability draws two disjoint subsets of a quarter of its annotators."""
    few = counts.sum(axis=1) < MIN_ANNOTATORS
    if few.any():
        raise ComparisonError(f"{where}: {few.sum()} stimuli have fewer than {MIN_ANNOTATORS} labels, so their "
                              "annotators cannot be split into two disjoint quarters: "
                              f"{', '.join(map(repr, ids[few][:8]))}; leave them out")


# ------------------------------------------------------------ per measure
def human_reliability(human: HumanMeasure, *, method: str, n_splits: int, n_resamples: int, seed: int,
                      ci_level: float) -> StatResult:
    """The reliability that fits the measure: halves of the subjects, or disjoint subsets of each stimulus's annotators."""
    from brainres.stats import split_half_reliability

    if human.has_subjects:
        return split_half_reliability(human.matrix, method=method, n_splits=n_splits, n_resamples=n_resamples,
                                      seed=seed, ci_level=ci_level)
    return label_split_half_reliability(human.counts, method=method, n_splits=n_splits, n_resamples=n_resamples,
                                        seed=seed, ci_level=ci_level, measure=human.measure)


def reliability_and_correction(human: HumanMeasure, model_matrix: np.ndarray, *, method: str, n_splits: int,
                               n_resamples: int, seed: int, ci_level: float) -> tuple[StatResult, StatResult]:
    """The noise ceiling's reliability and the noise-corrected correlation that fit the measure.

    Subject measures: split halves of the subjects (``split_half_reliability``)
    and the engine's ``disattenuated_correlation``; label measures: disjoint
    subsets of each stimulus's annotators, extrapolated to all of them
    (:func:`label_split_half_reliability`, :func:`label_disattenuated_correlation`).
    """
    from brainres.stats import disattenuated_correlation

    common = {"method": method, "n_splits": n_splits, "n_resamples": n_resamples, "seed": seed, "ci_level": ci_level}
    reliability = human_reliability(human, **common)
    if human.has_subjects:
        corrected = disattenuated_correlation(model_matrix, human.matrix, **common)
    else:
        corrected = label_disattenuated_correlation(model_matrix, human.counts, measure=human.measure, **common)
    return reliability, corrected


def reliability_label(human: HumanMeasure) -> str:
    """The noise ceiling's row label: says how the reliability was made (subject halves, or annotator subsets)."""
    how = "split-half" if human.has_subjects else "annotator-subset"
    return f"{human.name} {how} reliability (noise ceiling)"


def pearson_on_labels_note(human: HumanMeasure, method: str) -> list[str]:
    """A report note where Pearson intervals on label counts were calibrated short of 95 % (docs/statistics.md)."""
    if method != "pearson" or human.has_subjects:
        return []
    return ["Note: on label counts the Pearson intervals fell short of 95 % in calibration (the share correct's "
            "noise ceiling covered 0.90-0.93 of 500 simulated studies; docs/statistics.md); Spearman, the default, "
            "covered 0.94-0.97."]


def reliability_sentence(human: HumanMeasure, reliability: StatResult, n_splits: int) -> str:
    """How the noise ceiling of this measure was made, for the methods text."""
    if human.has_subjects:
        return (f"split-half reliability of per-stimulus {human.name} over {reliability.extra.get('n_splits', n_splits)} "
                f"{'(all distinct)' if reliability.extra.get('exhaustive_splits') else 'random'} subject splits, "
                "stepped up to all subjects")
    return (f"reliability of per-stimulus {human.name} from {n_splits} random splits of each stimulus's annotators "
            f"(a median of {human.n_units}) into two disjoint subsets at each of a quarter, a third and half of them "
            "(drawn from the label counts without replacement, multivariate hypergeometric), the subsets' "
            "correlations extrapolated to all annotators (Spearman-Brown with a power fitted to the three sizes)")
