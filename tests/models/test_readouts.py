import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import entropy as scipy_entropy

from brainres.models.lattice import LatticeConfig, LatticeNet
from brainres.models.readouts import (
    ReadoutError,
    StepLogitsAdapter,
    StepwiseModel,
    entropy_threshold_step,
    expected_halting_step,
    median_halting_step,
    model_time,
    readout_table,
    readouts_for_model,
    step_entropy,
    step_uncertainty,
    uncertainty_auc,
)


def _random_logits(seed=0, shape=(7, 5, 4)):
    return np.random.default_rng(seed).normal(scale=2.0, size=shape)


def _random_halting(seed=0, shape=(7, 5)):
    raw = np.random.default_rng(seed).random(shape)
    return raw / raw.sum(axis=1, keepdims=True)


def test_expected_step_is_probability_weighted_mean_of_steps():
    probability = _random_halting()
    loop = [sum((n + 1) * row[n] for n in range(row.size)) for row in probability]
    assert np.allclose(expected_halting_step(probability), loop)


def test_median_step_is_first_step_reaching_half_the_mass():
    probability = np.array([[0.1, 0.3, 0.2, 0.4], [0.6, 0.2, 0.1, 0.1], [0.0, 0.0, 0.1, 0.9], [0.25, 0.25, 0.25, 0.25]])
    assert median_halting_step(probability).tolist() == [3.0, 1.0, 4.0, 2.0]
    assert median_halting_step(probability, halting_mass=0.9).tolist() == [4.0, 3.0, 4.0, 4.0]


def test_entropy_matches_scipy():
    logits = _random_logits()
    probability = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    expected = scipy_entropy(probability, axis=2) / np.log(4)
    assert np.allclose(step_entropy(logits), expected)
    assert np.allclose(step_entropy(logits, normalise=False), scipy_entropy(probability, axis=2))


def test_entropy_threshold_step_finds_first_crossing_and_handles_never():
    # Stimulus 0 becomes sure at step 3; stimulus 1 never does.
    logits = np.zeros((2, 4, 3))
    logits[0, 2:, 0] = 10.0
    assert entropy_threshold_step(logits, threshold=0.2).tolist() == [3.0, 4.0]
    never = entropy_threshold_step(logits, threshold=0.2, if_never="nan")
    assert never[0] == 3.0 and np.isnan(never[1])
    with pytest.raises(ReadoutError, match="if_never"):
        entropy_threshold_step(logits, if_never="zero")


def test_uncertainty_auc_is_trapezoid_of_the_entropy_curve():
    logits = _random_logits(1)
    curve = step_entropy(logits)
    by_hand = curve[:, 1:-1].sum(axis=1) + 0.5 * (curve[:, 0] + curve[:, -1])
    assert np.allclose(uncertainty_auc(logits), by_hand)


def test_uncertainty_falls_when_evidence_grows():
    logits = np.zeros((1, 4, 3))
    logits[0, :, 0] = [0.0, 1.0, 3.0, 9.0]
    for kind in ("entropy", "evidential"):
        curve = step_uncertainty(logits, uncertainty=kind)[0]
        assert (np.diff(curve) < 0).all()
        assert 0 <= curve.min() and curve.max() <= 1


def test_dispatcher_routes_and_names_missing_inputs():
    logits, probability = _random_logits(), _random_halting()
    assert np.array_equal(model_time(method="expected_halting_step", halting_probability=probability),
                          expected_halting_step(probability))
    assert np.array_equal(model_time(method="entropy_threshold_step", logits=logits, threshold=0.3),
                          entropy_threshold_step(logits, threshold=0.3))
    with pytest.raises(ReadoutError, match="halting_probability"):
        model_time(method="median_halting_step", logits=logits)
    with pytest.raises(ReadoutError, match="unknown readout method 'reaction_time'"):
        model_time(method="reaction_time", logits=logits)


@pytest.mark.parametrize(
    "probability, words",
    [(np.array([[0.5, 0.6]]), "sum to 1"), (np.array([[1.2, -0.2]]), "negative"), (np.ones(3), "dims"),
     (np.array([[np.nan, 1.0]]), "NaN")],
)
def test_bad_halting_probabilities_are_rejected(probability, words):
    with pytest.raises(ReadoutError, match=words):
        expected_halting_step(probability)


def test_readout_table_is_one_row_per_stimulus():
    logits, probability = _random_logits(), _random_halting()
    ids = [f"s{i}" for i in range(7)]
    table = readout_table(logits=logits, halting_probability=probability, stimulus_id=ids)
    assert list(table.columns) == ["stimulus_id", "expected_halting_step", "median_halting_step",
                                   "entropy_threshold_step", "uncertainty_auc"]
    assert table["stimulus_id"].tolist() == ids
    without = readout_table(logits=logits)
    assert "expected_halting_step" not in without
    with pytest.raises(ReadoutError, match="stimulus_id"):
        readout_table(logits=logits, stimulus_id=ids[:3])
    with pytest.raises(ReadoutError, match="logits imply"):
        readout_table(logits=logits, halting_probability=_random_halting(shape=(7, 3)))


def test_lattice_satisfies_the_protocol_and_torch_inputs_work():
    model = LatticeNet(LatticeConfig(max_channels=4, max_layers=2, max_steps=3), seed=0)
    assert isinstance(model, StepwiseModel)
    images = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    table = readouts_for_model(model, images)
    out = model(images)
    assert np.allclose(table["expected_halting_step"], out["expected_steps"].detach().numpy(), atol=1e-5)
    assert table.shape == (6, 5)


def test_user_model_through_the_adapter():
    # A user's recurrent model that returns a list of per-step logits.
    def my_model(images):
        return [images.sum(axis=(1, 2, 3))[:, None] * np.array([[step, 0.0, -step]]) for step in range(4)]

    adapter = StepLogitsAdapter(my_model)
    images = np.ones((3, 1, 2, 2)) * np.array([1.0, 2.0, 3.0])[:, None, None, None]
    table = readouts_for_model(adapter, images)
    assert isinstance(table, pd.DataFrame) and len(table) == 3
    # Brighter images get larger logits, so they become sure no later than dimmer ones.
    assert (np.diff(table["entropy_threshold_step"]) <= 0).all()
    assert (np.diff(table["uncertainty_auc"]) < 0).all()
    with pytest.raises(ReadoutError, match="step_outputs"):
        readouts_for_model(my_model, images)
