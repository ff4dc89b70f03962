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
    for label in ("analytic", "two-factor", "noise-corrected"):
        r = by_label(result, label)
        assert r.ci_low > 0.2, label  # clearly positive
        assert r.ci_low < r.estimate < r.ci_high
    two = by_label(result, "two-factor")
    assert two.resampled == ("seed", "stimulus")
    # the uncalibrated seed x stimulus x subject bootstrap is no longer reported; the headline is the
    # noise-corrected (noise-free) correlation
    assert not any("three-factor" in r.extra["label"] for r in result.results)
    assert [r.extra["label"] for r in result.results if r.extra.get("headline")] == ["noise-corrected correlation"]
    assert 0 < by_label(result, "reliability").estimate < 1
    slope = by_label(result, "mixed model")
    assert slope.ci_low > 0 and slope.p_value < 0.001
    # subjects' slopes are in the model and the interval is a t interval with Satterthwaite's df (few subjects)
    assert "(1 + model_time_z | subject)" in slope.method and slope.interval == "satterthwaite_t"
    assert 1 < slope.extra["df"] < 80 and "mean over the population of subjects" in slope.extra["estimand"]
    assert "(1 + model_time_z | subject)" in result.methods and "Satterthwaite" in result.methods


def test_no_correlation_gives_an_interval_covering_zero():
    model, trials = planted_time_and_rt(correlation=0.0, seed=5)
    result = compare("time-vs-rt", model, trials, n_resamples=2000, n_splits=200, seed=2, mixed_model=False)
    for label in ("analytic", "two-factor", "noise-corrected"):
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


def test_figure_annotation_and_table_show_the_same_numbers(planted):
    result = planted[0]
    annotation = result.figures["scatter"].attrs["annotation"]
    analytic, corrected = by_label(result, "analytic"), by_label(result, "noise-corrected")
    from brainres.comparisons._common import fmt

    # the figure pairs each estimate with its own interval, as the table does
    assert f"r = {fmt(analytic.estimate)}, 95% CI [{fmt(analytic.ci_low)}, {fmt(analytic.ci_high)}]" in annotation
    assert f"noise-free r = {fmt(corrected.estimate)} [{fmt(corrected.ci_low)}, {fmt(corrected.ci_high)}]" in annotation
    ceiling = corrected.extra["ceiling"]
    assert f"ceiling (sqrt human reliability) = {fmt(ceiling)}" in annotation
    assert ceiling == pytest.approx(np.sqrt(by_label(result, "reliability").estimate))
    # every row states its estimand, and the splits the methods name are the splits used
    assert all(r.extra.get("estimand") for r in result.results if "mixed" not in r.extra["label"])
    n_splits = by_label(result, "reliability").extra["n_splits"]
    assert f"over {n_splits} " in result.methods


def _with_classes(model, n_classes=16):
    return model.assign_coords(class_name=("class_index", [f"c{k}" for k in range(n_classes)]))


def test_a_model_at_chance_carries_a_visible_warning():
    model, trials = planted_time_and_rt(correlation=0.6, seed=3, n_stimuli=80, n_subjects=6)
    model = _with_classes(model)
    rng = np.random.default_rng(0)
    shape = model["expected_halting_step"].shape
    model["halted_correct"] = (model["expected_halting_step"].dims, rng.random(shape) < 1 / 16)
    result = compare("time-vs-rt", model, trials, n_resamples=200, n_splits=20, mixed_model=False, seed=0)
    headline = [r for r in result.results if r.extra.get("headline")]
    assert headline and all("model at chance" in r.extra["warning"] for r in headline)
    assert any(note.startswith("Warning: model at chance") for note in result.notes)
    assert any("accuracy by seed" in note for note in result.notes)


def test_a_constant_readout_is_an_error_that_says_so():
    from brainres.comparisons._common import ComparisonError

    model, trials = planted_time_and_rt(correlation=0.6, seed=3, n_stimuli=80, n_subjects=6)
    model["expected_halting_step"][:] = 4.0
    with pytest.raises(ComparisonError, match="does not vary across the 80 stimuli"):
        compare("time-vs-rt", model, trials, n_resamples=200, n_splits=20, mixed_model=False, seed=0)


def test_reliability_resamples_is_a_declared_setting_the_rows_and_methods_report():
    # the noise ceiling and the noise-corrected correlation run reliability_resamples, not a hidden cap of
    # n_resamples; the rows and the methods text say how many each used
    model, trials = planted_time_and_rt(correlation=0.5, seed=4, n_stimuli=60, n_subjects=6)
    result = compare("time-vs-rt", model, trials, n_resamples=3000, reliability_resamples=500, n_splits=50,
                     seed=0, mixed_model=False)
    assert by_label(result, "two-factor").n_resamples == 3000
    assert by_label(result, "reliability").n_resamples == 500
    assert by_label(result, "noise-corrected").n_resamples == 500
    assert "3,000 resamples (seed 0)" in result.methods and "500 stimulus resamples" in result.methods
    with pytest.raises(ValueError, match="reliability_resamples"):
        compare("time-vs-rt", model, trials, reliability_resamples=1)
