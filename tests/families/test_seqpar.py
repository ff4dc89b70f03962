"""Sequential/parallel bottleneck autoencoders: mechanism, exact information, determinism, export."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import mutual_info_score

from brainres.data.io import read_netcdf, write_netcdf
from brainres.data.schema import validate
from brainres.families import seqpar
from brainres.models.seqpar import all_binary_vectors, straight_through_binary

# Small enough to train in a few seconds on one core.
TINY = seqpar.Config(input_dim=4, bottleneck_width=4, n_steps=2, epochs=100, batch_size=4, learning_rate=1e-2)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- exact information, checked by hand and against an independent implementation ---


def test_partition_entropy_by_hand():
    inputs = all_binary_vectors(2).numpy().astype(int)  # 00, 01, 10, 11
    uniform = np.full(4, 0.25)
    assert seqpar.partition_entropy(np.zeros(4, dtype=int), uniform) == 0.0  # a constant code says nothing
    assert seqpar.partition_entropy(inputs[:, 0], uniform) == pytest.approx(1.0)  # one bit
    assert seqpar.partition_entropy(inputs[:, 0] ^ inputs[:, 1], uniform) == pytest.approx(1.0)  # parity: one bit
    assert seqpar.partition_entropy(inputs, uniform) == pytest.approx(2.0)  # both bits
    skewed = np.array([0.5, 0.25, 0.25, 0.0])
    # code = first bit: cells {00, 01} (mass 0.75) and {10, 11} (mass 0.25)
    expected = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert seqpar.partition_entropy(inputs[:, 0], skewed) == pytest.approx(expected)


def test_information_measures_by_enumeration_of_a_hand_built_code():
    inputs = all_binary_vectors(3).numpy().astype(int)
    # step 1 sends bit 0; step 2 sends bit 0 again (nothing new); step 3 sends bit 1 xor bit 2.
    codes = np.stack([inputs[:, 0], inputs[:, 0], inputs[:, 1] ^ inputs[:, 2]], axis=1)[:, :, None]
    result = seqpar.information_measures(codes, inputs, np.full(8, 1 / 8))
    np.testing.assert_allclose(result["transmitted_bits"], [1.0, 1.0, 2.0])
    np.testing.assert_allclose(result["pointwise_bits"][:, 2], 2.0)  # four equal cells of mass 1/4
    # bit 0 is known after step 1; bits 1 and 2 alone are never identified by their parity
    np.testing.assert_allclose(result["bit_information"][0], [1, 0, 0])
    np.testing.assert_allclose(result["bit_information"][2], [1, 0, 0])
    # the repeated code adds nothing at step 2; the parity unit at step 3 says nothing about one bit alone
    np.testing.assert_allclose(result["unit_bit_information"][:, 0, :], [[1, 0, 0], [0, 0, 0], [0, 0, 0]], atol=1e-12)
    assert seqpar.sequential_parallel_index(result["transmitted_bits"]) == pytest.approx(0.5)


def test_information_matches_sklearn_mutual_information_on_random_codes():
    rng = np.random.default_rng(3)
    inputs = all_binary_vectors(4).numpy().astype(int)
    codes = rng.integers(0, 2, size=(16, 3, 2))
    result = seqpar.information_measures(codes, inputs, np.full(16, 1 / 16))
    for t in range(3):
        cells = np.unique(codes[:, : t + 1].reshape(16, -1), axis=0, return_inverse=True)[1].ravel()
        expected = mutual_info_score(np.arange(16), cells) / math.log(2)
        assert result["transmitted_bits"][t] == pytest.approx(expected)
        for j in range(4):
            assert result["bit_information"][t, j] == pytest.approx(mutual_info_score(inputs[:, j], cells) / math.log(2))
        assert np.average(result["pointwise_bits"][:, t], weights=np.full(16, 1 / 16)) == pytest.approx(expected)


def test_first_sent_bits_picks_the_most_informative_bits_at_step_one():
    bit_information = np.array([[0.2, 1.0, 0.0, 0.9], [1.0, 1.0, 1.0, 1.0]])
    assert seqpar.first_sent_bits(bit_information, 2) == (1, 3)
    assert seqpar.first_sent_bits(np.zeros((2, 3)), 1) == (0,)  # ties: lowest position


def test_arrival_steps():
    bit_information = np.array([[1.0, 0.0, 0.0], [1.0, 0.95, 0.0], [1.0, 1.0, 0.0]])
    arrivals = seqpar.arrival_steps(bit_information, np.array([1.0, 1.0, 0.0]))
    np.testing.assert_array_equal(arrivals[:2], [1, 2])
    assert np.isnan(arrivals[2])  # a constant bit has nothing to arrive


def test_input_probabilities_and_stimulus_ids():
    config = seqpar.Config(input_dim=4, task="fixed", fixed_bits=(0, 3))
    p = seqpar.input_probabilities(config)
    inputs = all_binary_vectors(4).numpy()
    assert p.sum() == pytest.approx(1)
    assert np.all(p[(inputs[:, 0] == 1) | (inputs[:, 3] == 1)] == 0)
    assert np.count_nonzero(p) == 4
    ids = seqpar.stimulus_ids(8)
    assert ids[42] == "binary-D8-0042" and len(set(ids)) == 256


# --- the mechanism ---


def test_straight_through_sample_is_hard_forward_and_has_a_gradient():
    logits = torch.tensor([[-0.3, 0.2, 4.0]], requires_grad=True)
    sample = straight_through_binary(logits, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert set(sample.detach().unique().tolist()) <= {-1.0, 1.0}
    sample.sum().backward()
    assert torch.all(logits.grad > 0)  # the relaxed sample carries the gradient


def test_without_feedback_the_code_repeats_so_information_cannot_grow():
    # Holds for any weights: the encoder sees the same input at every step.
    config = seqpar.Config(input_dim=4, bottleneck_width=1, n_steps=4, feedback=False)
    torch.manual_seed(0)
    model = seqpar.build_model(config)
    result = seqpar.evaluate(model, config)
    codes = result["codes"]
    assert np.array_equal(codes, np.repeat(codes[:, :1], 4, axis=1))
    np.testing.assert_allclose(result["transmitted_bits"], result["transmitted_bits"][0])
    # ... while with feedback the same weights compute different pre-activations at different steps
    inputs = all_binary_vectors(4)
    with torch.no_grad():
        assert torch.equal(model(inputs, stochastic=False)["code_logits"][:, 0], model(inputs, stochastic=False)["code_logits"][:, 1])
        model.feedback = True
        logits = model(inputs, stochastic=False)["code_logits"]
    assert not torch.allclose(logits[:, 0], logits[:, 1])


def test_feedback_lets_a_one_unit_bottleneck_send_more_than_one_bit():
    config = seqpar.Config(input_dim=3, bottleneck_width=1, n_steps=3, epochs=100, batch_size=2, learning_rate=3e-3)
    with_feedback = seqpar.evaluate(seqpar.train(config, 0)["model"], config)["transmitted_bits"]
    # Without feedback the bound holds whatever the training, so a short run suffices.
    no_feedback_config = dataclasses.replace(config, feedback=False, epochs=20)
    without = seqpar.evaluate(seqpar.train(no_feedback_config, 0)["model"], no_feedback_config)["transmitted_bits"]
    assert without[-1] <= 1.0 + 1e-9  # one binary unit, one repeated code: at most one bit
    assert with_feedback[0] <= 1.0 + 1e-9
    assert with_feedback[-1] >= 1.9  # later steps carried new bits


def test_width_D_bottleneck_reconstructs_at_step_one():
    result = seqpar.evaluate(seqpar.train(TINY, 0)["model"], TINY)
    assert result["transmitted_bits"][0] == pytest.approx(4.0)  # every input has its own code at step 1
    assert result["reconstruction_error"][:, 0].mean() <= 0.05
    assert seqpar.sequential_parallel_index(result["transmitted_bits"]) == pytest.approx(1.0)


# --- determinism, configuration, export ---


def test_same_seed_same_numbers_and_different_seed_different_numbers():
    config = dataclasses.replace(TINY, epochs=5)
    first, second, other = seqpar.train(config, 7), seqpar.train(config, 7), seqpar.train(config, 8)
    assert first["log"].equals(second["log"])
    for (name, a), b in zip(first["model"].state_dict().items(), second["model"].state_dict().values()):
        assert torch.equal(a, b), name
    assert not first["log"]["loss_bits"].equals(other["log"]["loss_bits"])


def test_config_validation_and_hash():
    canonical = json.dumps(TINY.to_dict(), sort_keys=True, separators=(",", ":"))
    assert TINY.config_hash() == hashlib.sha256(canonical.encode()).hexdigest()
    assert TINY.config_hash() == seqpar.Config(**{**TINY.to_dict(), "fixed_bits": ()}).config_hash()
    assert TINY.config_hash() != dataclasses.replace(TINY, bottleneck_width=2).config_hash()
    with pytest.raises(seqpar.SeqParError, match="bottleneck_width"):
        seqpar.Config(bottleneck_width=0)
    with pytest.raises(seqpar.SeqParError, match="fixed_bits"):
        seqpar.Config(input_dim=4, task="fixed", fixed_bits=(5,))
    with pytest.raises(seqpar.SeqParError, match="bottleneck must be one of"):
        seqpar.Config(bottleneck="analog")
    with pytest.raises(seqpar.SeqParError, match="seed"):
        seqpar.train(TINY, 1.5)


def test_measure_exports_a_valid_dataset_that_round_trips(tmp_path):
    config = dataclasses.replace(TINY, epochs=3)
    ds = seqpar.measure(config, [0, 1])
    validate(ds, "model_measures")
    assert ds.attrs["model_family"] == "seqpar" and ds.attrs["config_hash"] == config.config_hash()
    assert ds.attrs["pressures"]["bottleneck_width"] == 4
    assert list(ds["step"].values) == [1, 2] and ds["stimulus_id"].values[5] == "binary-D4-0005"
    assert ds["latent_code"].dims == ("seed", "stimulus_id", "step", "unit")
    # the exported per-stimulus information averages to the transmitted bits
    mean_pointwise = ds["information_bits"].weighted(ds["input_probability"]).mean("stimulus_id")
    np.testing.assert_allclose(mean_pointwise.values, ds["transmitted_bits"].values)
    path = tmp_path / "seqpar.nc"
    write_netcdf(ds, path)
    back = read_netcdf(path)
    np.testing.assert_array_equal(back["latent_code"].values, ds["latent_code"].values)
    assert back.attrs["pressures"] == ds.attrs["pressures"]


def test_continuous_bottleneck_exports_a_decoder_bound():
    config = dataclasses.replace(TINY, bottleneck="continuous", noise_std=0.3, epochs=3)
    ds = seqpar.measure(config, [0])
    assert "information_bits" not in ds and "decoded_bits" in ds
    assert ds.attrs["pressures"]["noise_std"] == 0.3
    again = seqpar.measure(config, [0])
    np.testing.assert_array_equal(ds["decoded_bits"].values, again["decoded_bits"].values)


def test_width_sweep_and_switch_tables_have_one_row_per_configuration_and_seed():
    base = dataclasses.replace(TINY, epochs=2)
    table, summary = seqpar.width_sweep(base, [1, 4], [0, 1])
    assert len(table) == 4 and set(table["bottleneck_width"]) == {1, 4}
    assert {"mean", "ci_low", "ci_high", "n_seeds"} <= set(summary.columns)
    switch, switch_summary, datasets = seqpar.distribution_switch(
        dataclasses.replace(base, bottleneck_width=1, n_steps=3), [0, 1], switch_epochs=2
    )
    assert len(switch) == 6 and set(switch["phase"]) == {"before", "after", "control"}
    for phase in datasets.values():
        for ds in phase.values():
            validate(ds, "model_measures")
    # one bit (the one the phase-1 code sent first, k = 1) is fixed, leaving 3 bits to send
    assert (switch.loc[switch.phase == "before", "target_bits"] == 3.0).all()


@pytest.mark.slow
def test_headline_parallel_at_full_width_and_sequential_below():
    base = seqpar.Config(input_dim=6, n_steps=6, epochs=500, batch_size=16)
    table, _ = seqpar.width_sweep(base, [2, 6], [0, 1])
    wide = table[table.bottleneck_width == 6]
    narrow = table[table.bottleneck_width == 2]
    assert (wide["sequential_parallel_index"] >= 0.95).all()
    assert (narrow["bits_step_1"] <= 2 + 1e-9).all()
    assert (narrow["bits_final"] >= 4).all()  # later steps carried new bits
