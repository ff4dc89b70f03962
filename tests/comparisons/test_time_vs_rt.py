import numpy as np
import pytest

from brainres.compare import compare
from brainres.errors import StimulusMismatchError
from brainres.testing import planted_time_and_rt


def by_label(result, text):
    return next(r for r in result.results if text in r.extra["label"])


@pytest.fixture(scope="module")
def planted():
    # small enough for the trial-level mixed model to fit in a few seconds
    model, trials = planted_time_and_rt(correlation=0.6, seed=3, n_stimuli=80, n_subjects=6)
    return compare("time-vs-rt", model, trials, method="pearson", n_resamples=2000, n_splits=200, seed=1), model, trials


def test_planted_correlation_is_recovered(planted):
    result, _, _ = planted
    corrected = by_label(result, "noise-corrected")
    assert corrected.ci_low < 0.6 < corrected.ci_high  # the planted value lies in the interval
    for label in ("analytic", "two-factor", "three-factor"):
        r = by_label(result, label)
        assert r.ci_low > 0.2, label  # clearly positive
        assert r.ci_low < r.estimate < r.ci_high
    three, two = by_label(result, "three-factor"), by_label(result, "two-factor")
    assert three.resampled == ("seed", "stimulus", "subject") and two.resampled == ("seed", "stimulus")
    assert 0 < by_label(result, "reliability").estimate < 1
    slope = by_label(result, "mixed model")
    assert slope.ci_low > 0 and slope.p_value < 0.001


def test_no_correlation_gives_an_interval_covering_zero():
    model, trials = planted_time_and_rt(correlation=0.0, seed=5)
    result = compare("time-vs-rt", model, trials, n_resamples=2000, n_splits=200, seed=2, mixed_model=False)
    for label in ("analytic", "two-factor", "three-factor"):
        r = by_label(result, label)
        assert r.ci_low < 0 < r.ci_high, label


def test_same_seed_same_numbers(planted):
    _, model, trials = planted
    again = compare("time-vs-rt", model, trials, method="pearson", n_resamples=2000, n_splits=200, seed=1)
    first = planted[0]
    assert [r.estimate for r in first.results] == [r.estimate for r in again.results]
    assert [r.ci_low for r in first.results] == [r.ci_low for r in again.results]


def test_stimulus_mismatch_names_the_stimuli_unless_intersection_is_asked(planted):
    _, model, trials = planted
    fewer = model.isel(stimulus_id=slice(2, None))
    with pytest.raises(StimulusMismatchError, match="stim0000, stim0001"):
        compare("time-vs-rt", fewer, trials, n_resamples=200, n_splits=20, mixed_model=False)
    result = compare("time-vs-rt", fewer, trials, n_resamples=200, n_splits=20, mixed_model=False, intersect=True)
    assert result.inputs["n_stimuli"] == 78
    assert any("Only the 78 stimuli common" in note for note in result.notes)


def test_figure_and_methods_describe_what_ran(planted):
    result = planted[0]
    figure = result.figures["scatter"]
    assert figure.sizes["point"] == 80 and figure.attrs["figure"] == "scatter"
    assert "2,000 resamples (seed 1)" in result.methods and "3 seeds" in result.methods
    assert np.isfinite(result.table()["estimate"]).all()
