"""The two sides of a per-stimulus comparison, matched: model time (seed x stimulus) and a human measure.

``time-vs-rt`` and ``competence-alignment`` read the same human side (reaction
time, accuracy or label entropy; dense or sparse) and line it up with the
model's stimuli the same way; this is that one step. Not a plug-in.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from brainres.compare import match_stimuli
from brainres.comparisons._common import ComparisonError, per_subject
from brainres.comparisons._human_measures import HumanMeasure, human_measure
from brainres.stats.sparse import human_cells, is_sparse_human, prefer_sparse, stimulus_means


@dataclasses.dataclass(frozen=True)
class MatchedHuman:
    """The human side on the model's stimuli.

    Attributes
    ----------
    measured : HumanMeasure
        The measure on the shared stimuli (what its reliability needs).
    matrix : numpy.ndarray or SparseHuman, shape (n_subjects, n_stimuli)
        Per-subject values (one row, the per-stimulus values, for a measure without subjects).
    stimulus_id : numpy.ndarray of str
        The shared stimuli, in the model's order.
    notes : list of str
        What matching left out.
    by_subject : callable
        How per-subject values were formed (dense ``per_subject`` or sparse ``human_cells``).
    """

    measured: HumanMeasure
    matrix: object
    stimulus_id: np.ndarray
    notes: list
    by_subject: object

    @property
    def means(self) -> np.ndarray:
        return stimulus_means(self.matrix)


def match_human(trials: xr.Dataset, model: xr.Dataset, model_stimuli, *, measure: str, correct_only: bool = False,
                intersect: bool = False) -> MatchedHuman:
    """The per-stimulus human ``measure`` on the stimuli it shares with the model (in the model's order).

    Crowd-sourced designs (each subject saw few stimuli) keep only the
    observed cells. Accuracy from label counts scores each stimulus against
    the category the model export gives it. A stimulus without an answered
    (or correct) trial is an error naming it.
    """
    data_name = trials.attrs.get("dataset_id", "the human data")
    first_notes = None
    if measure == "accuracy" and "counts" in trials:
        # label counts are scored against the model's categories, so only the model's stimuli get a value: match
        # the stimuli first, so that a stimulus only the data has is never dropped unsaid
        _, first_notes = match_stimuli(np.asarray(model_stimuli), trials["stimulus_id"].values, intersect=intersect,
                                       model_name="the model export", data_name=data_name)
    by_subject = human_cells if "trial" in trials.dims and prefer_sparse(trials) else per_subject
    categories = model["category"] if "category" in model else None
    measured = human_measure(trials, measure, correct_only=correct_only, by_subject=by_subject, categories=categories)
    # label entropy has no subjects: one row, the per-stimulus entropy of all labels
    human = measured.matrix if is_sparse_human(measured.matrix) else xr.DataArray(  # sparse data stay sparse
        measured.matrix if measured.has_subjects else measured.values()[None],
        dims=("subject", "stimulus_id"), coords={"stimulus_id": measured.stimulus_id})
    shared, notes = match_stimuli(np.asarray(model_stimuli), human["stimulus_id"].values, intersect=intersect,
                                  model_name="the model export", data_name=data_name)
    notes = notes if first_notes is None else first_notes
    matrix = human.sel(stimulus_id=shared).values
    unanswered = np.isnan(stimulus_means(matrix))
    if unanswered.any():
        which = "correct " if correct_only else "answered "
        ids = [str(s) for s in np.asarray(shared)[unanswered]]
        raise ComparisonError(
            f"{data_name} has no {which}trial of {len(ids)} of the {len(shared)} stimuli, so no {measured.name} to "
            f"compare with: {', '.join(map(repr, ids[:8]))}" + (f" (and {len(ids) - 8} more)" if len(ids) > 8 else "")
            + "; leave them out of the data or the export" + (", or set correct_only = false" if correct_only else ""))
    return MatchedHuman(measured=measured.select(shared), matrix=matrix, stimulus_id=np.asarray(shared), notes=notes,
                        by_subject=by_subject)
