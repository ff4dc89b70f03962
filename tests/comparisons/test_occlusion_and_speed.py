import importlib.util
from pathlib import Path

import numpy as np
import pytest

from brainres.compare import compare

spec = importlib.util.spec_from_file_location("synthetic", Path(__file__).with_name("synthetic.py"))
synthetic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synthetic)


def labelled(result, text):
    return [r for r in result.results if text in r.extra.get("label", "")]


def test_planted_occlusion_effect_is_recovered():
    model = synthetic.export(occlusion_effect=2.0, seed=1)
    trials = synthetic.trials_for(model["stimulus_id"].values)
    result = compare("occlusion-recurrence", model, trials, n_resamples=2000, seed=0)
    slope = labelled(result, "mean over seeds")[0]
    assert slope.ci_low < 2.0 < slope.ci_high and slope.ci_low > 0
    per_seed = labelled(result, "minus unoccluded")
    assert len(per_seed) == 3 and all(r.ci_low > 0 for r in per_seed)
    assert all(r.resampled == ("stimulus",) for r in per_seed)
    assert any("single condition" in note for note in result.notes)
    figure = result.figures["occlusion"]
    assert figure["y"].shape == (3, 3) and (figure["y_low"] <= figure["y"]).all()


def test_no_occlusion_effect_covers_zero():
    model = synthetic.export(occlusion_effect=0.0, seed=2)
    result = compare("occlusion-recurrence", model, synthetic.trials_for(model["stimulus_id"].values),
                     n_resamples=2000, seed=0)
    slope = labelled(result, "mean over seeds")[0]
    assert slope.ci_low < 0 < slope.ci_high


def test_occlusion_needs_levels():
    model = synthetic.export(levels=(0.0,))
    with pytest.raises(Exception, match="at least two occlusion levels"):
        compare("occlusion-recurrence", model, synthetic.trials_for(model["stimulus_id"].values))


def test_speed_accuracy_recovers_planted_gain_and_slow_errors():
    model = synthetic.export(accuracy_by_step=(0.3, 0.5, 0.7, 0.8, 0.9), slow_errors=1.5, seed=3)
    trials = synthetic.trials_for(model["stimulus_id"].values, error_slowdown=0.15)
    result = compare("speed-accuracy", model, trials, n_resamples=2000, seed=0)
    gains = labelled(result, "accuracy at step")
    assert all(r.ci_low < 0.6 < r.ci_high for r in gains)  # planted 0.9 - 0.3
    assert labelled(result, "model: expected halting step on errors")[0].ci_low > 0
    human = labelled(result, "humans: mean RT on error")[0]
    assert human.ci_low < 0.15 < human.ci_high and human.interval == "t" and human.extra["n_unit"] == "subjects"
    assert human.ci_high - human.estimate == pytest.approx(human.estimate - human.ci_low)  # Student's t, symmetric
    assert not labelled(result, "vs chance")  # the synthetic export has no class list: no chance level
    by_step = result.figures["by_step"]["y"].mean("series").values
    np.testing.assert_allclose(by_step, [0.3, 0.5, 0.7, 0.8, 0.9], atol=0.08)


def test_speed_accuracy_without_effects():
    model = synthetic.export(n_stimuli=200, accuracy_by_step=(0.6,) * 5, slow_errors=0.0, seed=4)
    trials = synthetic.trials_for(model["stimulus_id"].values, error_slowdown=0.0)
    result = compare("speed-accuracy", model, trials, n_resamples=2000, seed=0)
    for r in labelled(result, "accuracy at step") + labelled(result, "model: expected steps") + labelled(result, "humans"):
        assert r.ci_low < 0 < r.ci_high, r.extra["label"]


def test_accuracy_is_tested_against_chance():
    model = synthetic.export(accuracy_by_step=(0.3, 0.5, 0.7, 0.8, 0.9), seed=3)
    model = model.assign_coords(class_name=("class_index", [str(i) for i in range(10)]))
    result = compare("speed-accuracy", model, synthetic.trials_for(model["stimulus_id"].values), n_resamples=200)
    against_chance = labelled(result, "vs chance 0.100")
    assert len(against_chance) == 3
    for r in against_chance:
        assert r.ci_low < r.estimate < r.ci_high and r.p_value < 1e-6 and r.interval == "clopper_pearson"


def test_a_constant_readout_is_named_as_such():
    from brainres.comparisons._common import ComparisonError

    model = synthetic.export(n_seeds=2, n_stimuli=30)
    model["expected_halting_step"][:] = 5.0
    data = synthetic.trials_for(list(model["stimulus_id"].values))
    with pytest.raises(ComparisonError, match="does not vary across stimuli or occlusion levels"):
        compare("occlusion-recurrence", model, data, n_resamples=100)
    result = compare("speed-accuracy", model, data, n_resamples=100)
    assert any("does not vary across stimuli" in note for note in result.notes)
    assert not any(r.statistic == "time_difference" for r in result.results)


def test_the_mean_slope_interval_treats_seeds_and_stimuli_as_random_and_agrees_with_statsmodels():
    import pandas as pd
    import statsmodels.api as sm
    import statsmodels.formula.api as smf
    from brainres.comparisons.occlusion_recurrence import crossed_mean_interval
    from scipy import stats

    rng = np.random.default_rng(7)
    table = 0.5 + rng.normal(size=(3, 1)) + 0.7 * rng.normal(size=(1, 120)) + rng.normal(size=(3, 120))
    out = crossed_mean_interval(table)
    k, n = table.shape
    frame = pd.DataFrame({"y": table.ravel(), "seed": np.repeat(np.arange(k), n), "stimulus": np.tile(np.arange(n), k)})
    squares = sm.stats.anova_lm(smf.ols("y ~ C(seed) + C(stimulus)", frame).fit())["mean_sq"].to_numpy()
    np.testing.assert_allclose([out["ms_seed"], out["ms_stimulus"], out["ms_residual"]], squares, rtol=1e-10)
    # Graybill-Wang: each mean square with the t quantile of its own degrees of freedom
    q = [stats.t.ppf(0.975, df) ** 2 for df in (k - 1, n - 1, (k - 1) * (n - 1))]
    half = np.sqrt((q[0] * squares[0] + q[1] * squares[1] - q[2] * squares[2]) / (k * n))
    np.testing.assert_allclose([out["ci_low"], out["ci_high"]], [table.mean() - half, table.mean() + half], rtol=1e-10)
    # wider than the normal interval with the unbiased variance: the 2 df of the seed mean square show
    unbiased = np.sqrt((squares[0] + squares[1] - squares[2]) / (k * n))
    assert half > 1.96 * unbiased
    # one seed: a plain t-interval over stimuli (scipy's)
    one = crossed_mean_interval(table[:1])
    low, high = stats.t.interval(0.95, n - 1, loc=table[0].mean(), scale=stats.sem(table[0]))
    np.testing.assert_allclose([one["ci_low"], one["ci_high"]], [low, high], rtol=1e-10)


def test_the_mean_slope_row_says_how_it_was_made():
    model = synthetic.export(occlusion_effect=2.0, seed=1)
    result = compare("occlusion-recurrence", model, synthetic.trials_for(model["stimulus_id"].values),
                     n_resamples=200, seed=0)
    slope = labelled(result, "mean over seeds")[0]
    assert slope.interval == "mls_graybill_wang" and slope.resampled == ("seed", "stimulus")
    assert slope.n_resamples == 0 and "Graybill and Wang" in slope.method and slope.extra["headline"]
    assert "modified large-sample interval (Graybill and Wang 1980)" in result.methods
