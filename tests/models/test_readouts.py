import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import entropy as scipy_entropy

from brainres.families.lattice import LatticeConfig, LatticeNet
from brainres.models.contract import ContractError
from brainres.models.readouts import (
    ReadoutError,
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


def test_lattice_goes_through_the_contract_and_torch_inputs_work():
    model = LatticeNet(LatticeConfig(max_channels=4, max_layers=2, max_steps=3), seed=0)
    images = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    table = readouts_for_model(model, images)
    out = model(images)
    assert np.allclose(table["expected_halting_step"], out["expected_steps"].detach().numpy(), atol=1e-5)
    assert np.allclose(table["median_halting_step"], median_halting_step(out["halting_probability"].detach()))
    assert np.allclose(table["uncertainty_auc"], uncertainty_auc(out["logits"].detach()))
    assert table.shape == (6, 5)


def _brightness_logits(images):
    """A user's recurrent 'model': per-step logits (batch, step, class) that grow with brightness and step."""
    brightness = images.sum(dim=(1, 2, 3))[:, None, None]
    steps = torch.arange(4, dtype=images.dtype)[None, :, None]
    return brightness * steps * torch.tensor([1.0, 0.0, -1.0])


def _bright_images():
    return torch.ones(3, 1, 2, 2) * torch.tensor([1.0, 2.0, 3.0])[:, None, None, None]


def test_user_callable_returning_per_step_logits():
    images = _bright_images()
    table = readouts_for_model(_brightness_logits, images, stimulus_id=["dim", "mid", "bright"])
    assert isinstance(table, pd.DataFrame) and len(table) == 3
    assert table["stimulus_id"].tolist() == ["dim", "mid", "bright"]
    # no halting probabilities: no halting readouts
    assert list(table.columns) == ["stimulus_id", "entropy_threshold_step", "uncertainty_auc"]
    # Brighter images get larger logits, so they become sure no later than dimmer ones.
    assert (np.diff(table["entropy_threshold_step"]) <= 0).all()
    assert (np.diff(table["uncertainty_auc"]) < 0).all()
    expected = readout_table(logits=_brightness_logits(images), stimulus_id=["dim", "mid", "bright"])
    pd.testing.assert_frame_equal(table, expected)


def test_user_module_returning_a_dict_with_halting():
    class Halting(torch.nn.Module):
        def forward(self, images):
            logits = _brightness_logits(images)
            halting = torch.softmax(logits[..., 0], dim=1)
            return {"logits": logits, "halting_probability": halting, "something_else": "ignored"}

    images = _bright_images()
    table = readouts_for_model(Halting(), images, entropy_threshold=0.3)
    logits = _brightness_logits(images)
    halting = torch.softmax(logits[..., 0], dim=1)
    assert np.allclose(table["expected_halting_step"], expected_halting_step(halting))
    assert np.allclose(table["entropy_threshold_step"], entropy_threshold_step(logits, threshold=0.3))


@pytest.mark.parametrize(
    "output, words",
    [(lambda images: [images.sum(dim=(1, 2, 3))[:, None]] * 4, "per-step logits.*returned a list"),
     (lambda images: {"halting_probability": torch.ones(3, 4) / 4}, "dict with 'logits'"),
     (lambda images: images.sum(dim=(1, 2))[:, :1].repeat(1, 3), "add a step dimension"),
     (lambda images: {"logits": _brightness_logits(images), "halting_probability": torch.ones(3, 4)},
      "rows summing to 1")],
)
def test_output_that_breaks_the_contract_is_named(output, words):
    with pytest.raises(ContractError, match=words):
        readouts_for_model(output, _bright_images())
