"""Which model is most human: the paired comparison, its plug-in, and its display in notebooks."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from brainres.compare import compare_models
from brainres.errors import BrainresError
from brainres.stats import bootstrap_correlation_difference

spec = importlib.util.spec_from_file_location("synthetic", Path(__file__).parent / "comparisons" / "synthetic.py")
synthetic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synthetic)

N_STIMULI, N_SUBJECTS = 80, 10


def _study(seed=0, noise=(0.3, 3.0, 0.3)):
    """Three models whose time follows the stimuli's difficulty with seed noise ``noise``, and the RTs."""
    rng = np.random.default_rng(seed)
    difficulty = rng.standard_normal(N_STIMULI)
    models = {}
    for name, sd in zip(("close", "far", "close-twin"), noise, strict=True):
        model = synthetic.export(n_stimuli=N_STIMULI, levels=(0.0,), seed=seed)
        time = 3 + difficulty[None, :, None] + sd * rng.standard_normal((3, N_STIMULI, 1))
        models[name] = model.assign(expected_halting_step=(model["expected_halting_step"].dims, time))
    trials = synthetic.trials_for(models["close"]["stimulus_id"].values, n_subjects=N_SUBJECTS, seed=seed)
    rt = trials["rt"].values.reshape(N_SUBJECTS, N_STIMULI) + 0.1 * difficulty[None]
    return models, trials.assign(rt=("trial", rt.ravel(), {"units": "s"})), rt


def test_difference_is_the_difference_of_the_two_correlations_and_its_p_value_agrees_with_its_interval():
    models, _, rt = _study()
    a = models["close"]["expected_halting_step"].values[..., 0]
    b = models["far"]["expected_halting_step"].values[..., 0]
    result = bootstrap_correlation_difference(a, b, rt, n_resamples=2000, seed=3)
    mean_rt = rt.mean(axis=0)
    expected = scipy.stats.spearmanr(a.mean(0), mean_rt)[0] - scipy.stats.spearmanr(b.mean(0), mean_rt)[0]
    assert result.estimate == pytest.approx(expected, abs=1e-12)
    assert result.extra["estimate_a"] == pytest.approx(scipy.stats.spearmanr(a.mean(0), mean_rt)[0], abs=1e-12)
    assert set(result.resampled) == {"stimulus", "subject", "seed_a", "seed_b"}
    assert result.ci_low > 0 and result.p_value < 0.05
    again = bootstrap_correlation_difference(a, b, rt, n_resamples=2000, seed=3)
    assert (again.ci_low, again.ci_high, again.p_value) == (result.ci_low, result.ci_high, result.p_value)


def test_equal_models_give_an_interval_around_zero():
    models, _, rt = _study(seed=1)
    a = models["close"]["expected_halting_step"].values[..., 0]
    twin = models["close-twin"]["expected_halting_step"].values[..., 0]
    result = bootstrap_correlation_difference(a, twin, rt, n_resamples=2000, seed=0)
    assert result.ci_low < 0 < result.ci_high and result.p_value > 0.05


def test_paired_seeds_draw_one_seed_factor_for_the_same_seeds_at_two_training_epochs():
    # the same three training runs early and late in training: their seed noise is shared, so the paired
    # bootstrap (one seed factor) sees less spread in the change than two independent seed factors would
    rng = np.random.default_rng(4)
    difficulty = rng.standard_normal(200)
    human = difficulty + rng.standard_normal((10, 200))
    seed_noise = rng.standard_normal((3, 200))
    early, late = 0.3 * difficulty + seed_noise, difficulty + seed_noise
    paired = bootstrap_correlation_difference(late, early, human, n_resamples=2000, seed=1, paired_seeds=True)
    independent = bootstrap_correlation_difference(late, early, human, n_resamples=2000, seed=1)
    assert set(paired.resampled) == {"stimulus", "subject", "seed"} and paired.extra["paired_seeds"]
    assert paired.estimate == pytest.approx(independent.estimate, abs=1e-12)
    assert paired.ci_high - paired.ci_low < 0.8 * (independent.ci_high - independent.ci_low)
    assert paired.ci_low > 0
    with pytest.raises(BrainresError, match="same seeds"):
        bootstrap_correlation_difference(late, early[:2], human, n_resamples=100, paired_seeds=True)


def test_model_comparison_ranks_models_with_holm_adjusted_pairs_and_a_ceiling():
    models, trials, _ = _study(seed=2)
    result = compare_models("model-comparison", models, trials, n_resamples=1000, n_splits=50, seed=0)
    correlations = {r.extra["model"]: r for r in result.results if "vs human RT" in r.extra.get("label", "")}
    assert set(correlations) == set(models)
    assert correlations["close"].estimate > correlations["far"].estimate
    pairs = [r for r in result.results if "reference" in r.extra]
    assert len(pairs) == 3 and all(r.extra["adjustment"] == "holm" and r.extra["family_size"] == 3 for r in pairs)
    assert all(0 < r.p_value <= r.extra["p_adjusted"] <= 1 for r in pairs)
    close_minus_far = next(r for r in pairs if r.extra["model"] == "close" and r.extra["reference"] == "far")
    assert close_minus_far.ci_low > 0
    assert all(r.extra.get("estimand") for r in pairs + list(correlations.values()))
    figure = result.figures["models"]
    assert list(figure["model"].values) == list(models) and figure.attrs["figure"] == "bars"
    assert 0 <= figure.attrs["ceiling_low"] <= figure.attrs["ceiling_high"] <= 1
    assert "Holm-adjusted over the 3 pairs" in result.methods
    html = result._repr_html_()
    assert "<svg" in html and "close minus far" in html


def test_model_comparison_refuses_one_model_and_other_stimuli():
    models, trials, _ = _study()
    with pytest.raises(BrainresError, match="at least two models"):
        compare_models("model-comparison", {"close": models["close"]}, trials)
    shifted = models["far"].isel(stimulus_id=slice(0, N_STIMULI - 5))
    with pytest.raises(BrainresError, match="stimulus sets differ.*model 'far'"):
        compare_models("model-comparison", {"close": models["close"], "far": shifted}, trials, n_resamples=100)
    with pytest.raises(BrainresError, match="one model at a time"):
        compare_models("time-vs-rt", models, trials)
