"""ELM family: exact parameter counts, real sparse synapses, leaky memory, determinism, export."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from brainres.data.schema import validate
from brainres.families import elm
from brainres.families.elm.network import ELMConfigError, ELMNetwork, parameter_count
from brainres.settings import SettingsError


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def recall_task(*, n_train=512, n_test=128, n_classes=4, delay=3, seed=0, name="recall"):
    """Recall the class shown (one-hot) at step 1 after ``delay`` blank steps: needs memory."""
    rng = np.random.default_rng(seed)
    splits = []
    for n in (n_train, n_test):
        labels = rng.integers(0, n_classes, n)
        inputs = np.zeros((n, delay + 1, n_classes), dtype=np.float32)
        inputs[np.arange(n), 0, labels] = 1.0
        splits.append((torch.from_numpy(inputs), torch.from_numpy(labels.astype(np.int64))))
    return elm.SequenceTask(name=name, train_inputs=splits[0][0], train_targets=splits[0][1],
                            test_inputs=splits[1][0], test_targets=splits[1][1], n_outputs=n_classes)


SMALL = elm.ELMConfig(task="recall", n_neurons=6, k_e=3, k_c=4, epochs=2, batch_size=64, learning_rate=1e-2)


# --- parameter counting and sparse connectivity -------------------------------------------


def test_parameter_count_matches_a_hand_count_and_the_module():
    # N=3 neurons, k_e=2 memories, k_c=4 synapses, MLP hidden 2*2=4, 5 inputs, 3 outputs.
    synapse_weights, synapse_timescales = 4, 4
    mlp_first_layer = (4 + 2) * 4 + 4  # [4 synaptic traces, 2 memories] -> 4 hidden, with bias
    mlp_second_layer = 4 * 2 + 2       # 4 hidden -> 2 memory proposals, with bias
    memory_timescales, output_weights = 2, 2
    per_neuron = (synapse_weights + synapse_timescales + mlp_first_layer + mlp_second_layer
                  + memory_timescales + output_weights)
    readout = 3 * 3 + 3
    hand_count = 3 * per_neuron + readout
    assert hand_count == 162

    model = ELMNetwork(n_inputs=5, n_outputs=3, n_neurons=3, k_e=2, k_c=4, mlp_width_factor=2, init_seed=0)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == hand_count
    assert parameter_count(n_neurons=3, k_e=2, k_c=4, n_outputs=3, mlp_width_factor=2) == hand_count
    config = elm.ELMConfig(n_neurons=3, k_e=2, k_c=4)
    assert elm.parameter_count(config, n_inputs=5, n_outputs=3) == hand_count
    # The wiring is a buffer, not a parameter: a dense (N x sources) weight matrix would cost more.
    assert "presynaptic_index" in dict(model.named_buffers())
    assert all(p.shape[-1] != 5 + 3 for p in model.parameters())


def test_each_neuron_has_exactly_k_c_distinct_sources():
    model = ELMNetwork(n_inputs=7, n_outputs=2, n_neurons=5, k_e=2, k_c=3, connectivity_seed=4)
    wiring = model.connectivity()
    assert wiring.shape == (5, 12)
    assert wiring.sum(dim=1).tolist() == [3] * 5
    other = ELMNetwork(n_inputs=7, n_outputs=2, n_neurons=5, k_e=2, k_c=3, connectivity_seed=5)
    assert not torch.equal(wiring, other.connectivity())


def _first_step_jacobian(model: ELMNetwork) -> torch.Tensor:
    """d(neuron outputs at step 1) / d(inputs at step 1); at step 1 only direct synapses act."""
    inputs = torch.rand(1, 1, model.n_inputs)
    jacobian = torch.autograd.functional.jacobian(lambda x: model(x)["neuron_output"][0, 0], inputs)
    return jacobian[:, 0, 0, :]


def test_absent_synapses_carry_no_signal_before_or_after_training():
    task = recall_task(n_classes=6)
    config = dataclasses.replace(SMALL, n_neurons=5, k_c=3, epochs=1)
    untrained = elm.build_model(config, n_inputs=6, n_outputs=6, seed=3)
    trained = elm.train(config, 3, task=task).model
    for model in (untrained, trained):
        wired = model.connectivity()[:, : model.n_inputs]
        jacobian = _first_step_jacobian(model)
        assert torch.all(jacobian[~wired] == 0), "an input without a synapse influenced a neuron"
        assert torch.all(jacobian[wired] != 0), "a wired input had no influence"
    assert torch.equal(untrained.presynaptic_index, trained.presynaptic_index)
    assert not torch.equal(untrained.synapse_weight, trained.synapse_weight)


def test_k_c_larger_than_the_sources_is_refused():
    with pytest.raises(ELMConfigError, match="k_c=9"):
        ELMNetwork(n_inputs=4, n_outputs=2, n_neurons=4, k_e=1, k_c=9)
    with pytest.raises(SettingsError, match="k_c: 20 exceeds the 12 sources"):
        elm.parameter_count(elm.ELMConfig(n_neurons=2, k_c=20), n_inputs=10, n_outputs=19)


# --- the neuron's dynamics ----------------------------------------------------------------


def test_memory_is_a_leaky_integrator_with_its_learned_timescale():
    model = ELMNetwork(n_inputs=2, n_outputs=1, n_neurons=2, k_e=3, k_c=2, init_seed=1)
    constant = 0.4
    with torch.no_grad():
        model.mlp_out_weight.zero_()
        model.mlp_out_bias.fill_(constant)  # the proposal is tanh(0.4) at every step
    n_steps = 6
    memory = model(torch.zeros(1, n_steps, 2), return_memory=True)["memory"][0].detach()
    kappa = torch.exp(-1 / model.tau_m).detach()
    steps = torch.arange(1, n_steps + 1, dtype=torch.float32)[:, None, None]
    expected = np.tanh(constant) * (1 - kappa[None] ** steps)
    torch.testing.assert_close(memory, expected, rtol=1e-5, atol=1e-6)
    # Timescales start log-spaced over the allowed range, so units forget at different rates.
    assert torch.all(model.tau_m[:, 1:] > model.tau_m[:, :-1])


def test_synaptic_traces_keep_an_input_alive_across_the_delay():
    # With memory proposals independent of the memory itself, a neuron's output after an
    # impulse can only change through the decaying synaptic trace.
    model = ELMNetwork(n_inputs=1, n_outputs=1, n_neurons=1, k_e=1, k_c=1, init_seed=0)
    with torch.no_grad():
        model.presynaptic_index.zero_()
        model.mlp_in_weight[:, 1:].zero_()  # ignore the memory input
    impulse = torch.zeros(1, 5, 1)
    impulse[0, 0, 0] = 1.0
    with_trace = model(impulse, return_memory=True)["memory"][0, :, 0, 0]
    with torch.no_grad():
        model.synapse_tau_raw.fill_(-30.0)  # tau_s at its lower bound 1: trace decays by e each step
    faster = model(impulse, return_memory=True)["memory"][0, :, 0, 0]
    assert not torch.allclose(with_trace, faster)


# --- training, determinism, export --------------------------------------------------------


def test_training_is_deterministic_for_a_seed():
    task = recall_task()
    first = elm.train(SMALL, 7, task=task)
    second = elm.train(SMALL, 7, task=task)
    other = elm.train(SMALL, 8, task=task)
    assert first.log.drop(columns="seconds").equals(second.log.drop(columns="seconds"))
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)
    assert not first.log["train_loss"].equals(other.log["train_loss"])


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    task = recall_task()
    config = dataclasses.replace(SMALL, epochs=3)
    straight = elm.train(config, 2, task=task, run_dir=tmp_path / "straight")
    stopped = elm.train(config, 2, task=task, run_dir=tmp_path / "resumed", stop_after_epoch=1)
    assert len(stopped.log) == 1
    resumed = elm.train(config, 2, task=task, run_dir=tmp_path / "resumed")
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert resumed.log.drop(columns="seconds").equals(straight.log.drop(columns="seconds"))
    loaded = elm.load(config, tmp_path / "resumed", task=task)
    assert loaded.seed == 2 and torch.equal(loaded.model.readout.weight, straight.model.readout.weight)
    with pytest.raises(Exception, match="another configuration"):
        elm.train(dataclasses.replace(config, epochs=4), 2, task=task, run_dir=tmp_path / "resumed")


def test_an_elm_layer_learns_delayed_recall():
    task = recall_task(n_train=768, n_test=256, n_classes=4, delay=4)
    config = dataclasses.replace(SMALL, epochs=12)
    result = elm.train(config, 0, task=task)
    assert result.log["test_metric"].iloc[-1] > 0.9  # chance is 0.25


def test_measure_exports_a_valid_model_measures_dataset():
    task = recall_task(n_test=64)
    ds = elm.measure(SMALL, [elm.train(SMALL, seed, task=task) for seed in (0, 1)])
    validate(ds, "model_measures")
    assert ds.attrs["model_family"] == "elm"
    assert ds.attrs["config_hash"] == SMALL.config_hash()
    pressures = ds.attrs["pressures"]
    assert (pressures["n_neurons"], pressures["k_e"], pressures["k_c"]) == (6, 3, 4)
    model = elm.build_model(SMALL, n_inputs=4, n_outputs=4, seed=0)
    assert pressures["parameter_count"] == sum(p.numel() for p in model.parameters())
    assert ds.sizes["seed"] == 2 and ds.sizes["stimulus_id"] == 64 and ds.sizes["unit"] == 6
    assert ds["stimulus_id"].values[0] == "recall-test-00000"
    assert ds["step"].values.tolist() == [1, 2, 3, 4]
    # The last step's correctness is the test metric.
    accuracy = ds["correct"].isel(step=-1).mean("stimulus_id")
    np.testing.assert_allclose(accuracy.values, ds["test_metric"].values)
    assert ds["output_snr"].dims == ("seed", "unit")
    assert ds["redundancy"].dims == ("seed", "unit", "unit_2")
    assert "recall" in ds.attrs["training_data"]


def test_measure_with_a_regression_task_and_write_round_trip(tmp_path):
    from brainres.data.io import read_netcdf, write_netcdf

    rng = np.random.default_rng(0)
    inputs = torch.from_numpy(rng.normal(size=(96, 5, 3)).astype(np.float32))
    targets = inputs.sum(dim=1)[:, :2]  # (batch, 2) at the last step
    task = elm.SequenceTask(name="sum-regression", train_inputs=inputs[:64], train_targets=targets[:64],
                            test_inputs=inputs[64:], test_targets=targets[64:], loss="mse")
    config = dataclasses.replace(SMALL, task="sum-regression", epochs=1)
    ds = elm.measure(config, [elm.train(config, seed, task=task) for seed in (0, 1)])
    assert ds.attrs["test_metric_name"] == "r_squared"
    assert ds["prediction"].dims == ("seed", "stimulus_id", "output")
    path = tmp_path / "elm.nc"
    write_netcdf(ds, path, validate_kind="model_measures")
    back = read_netcdf(path)
    np.testing.assert_allclose(back["test_metric"].values, ds["test_metric"].values)
    assert back.attrs["pressures"] == ds.attrs["pressures"]


def test_user_task_errors_name_the_culprit():
    task = recall_task()
    with pytest.raises(elm.ELMFamilyError, match="train_targets"):
        elm.SequenceTask(name="x", train_inputs=task.train_inputs, train_targets=task.train_targets.float(),
                         test_inputs=task.test_inputs, test_targets=task.test_targets)
    with pytest.raises(elm.ELMFamilyError, match="test_inputs"):
        elm.SequenceTask(name="x", train_inputs=task.train_inputs, train_targets=task.train_targets,
                         test_inputs=task.test_inputs[:, :, :2], test_targets=task.test_targets)
    with pytest.raises(elm.ELMFamilyError, match="task"):
        elm.train(elm.ELMConfig(task="something-else"), 0, task=task)


def test_task_from_tensors_splits_reproducibly_without_overlap():
    inputs = torch.arange(40, dtype=torch.float32).reshape(10, 4, 1)
    targets = torch.arange(10) % 3
    task = elm.task_from_tensors("mine", inputs, targets, test_fraction=0.3, split_seed=2)
    again = elm.task_from_tensors("mine", inputs, targets, test_fraction=0.3, split_seed=2)
    assert torch.equal(task.test_inputs, again.test_inputs)
    train_first = set(task.train_inputs[:, 0, 0].tolist())
    test_first = set(task.test_inputs[:, 0, 0].tolist())
    assert len(test_first) == 3 and not train_first & test_first and len(train_first | test_first) == 10
    assert task.n_outputs == 3 and task.training_data() == "mine (data_seed=2)"


def test_config_hash_is_canonical_and_sensitive():
    assert elm.ELMConfig().config_hash() == elm.ELMConfig(**elm.ELMConfig().to_dict()).config_hash()
    assert elm.ELMConfig(k_c=9).config_hash() != elm.ELMConfig().config_hash()
    with pytest.raises(SettingsError, match="n_neurons"):
        elm.ELMConfig(n_neurons=0)
    with pytest.raises(SettingsError, match="tau_m_min"):
        elm.ELMConfig(tau_m_min=60.0)


# --- per-neuron measures and budgets ------------------------------------------------------


def test_output_snr_against_a_hand_computation():
    classes = np.array([0, 0, 1, 1])
    outputs = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0], [6.0, 1.0]])
    # Neuron 0: class means 1 and 5 around a grand mean 3 -> signal 4; within-class deviations +-1 -> noise 1.
    snr = elm.output_snr(outputs, classes, categorical=True)
    assert snr[0] == pytest.approx(4.0)
    assert np.isnan(snr[1])  # a constant neuron has no SNR
    # Continuous targets: output = 2 * target + residual (+-1, orthogonal to the target).
    target = np.array([-1.0, 1.0, -1.0, 1.0])
    residual = np.array([1.0, 1.0, -1.0, -1.0])
    snr = elm.output_snr((2 * target + residual)[:, None], target, categorical=False)
    assert snr[0] == pytest.approx(4.0)


def test_pairwise_redundancy_of_copies_and_independent_neurons():
    rng = np.random.default_rng(1)
    a = rng.normal(size=2000)
    outputs = np.column_stack([a, -3 * a + 1, rng.normal(size=2000)])
    redundancy = elm.pairwise_redundancy(outputs)
    assert redundancy[0, 1] == pytest.approx(1.0)
    assert redundancy[0, 2] < 0.01
    np.testing.assert_allclose(np.diag(redundancy), 1.0)


def test_allocations_lie_within_the_budget_and_match_built_models():
    table = elm.allocations(3000, n_inputs=10, n_outputs=19, tolerance=0.05)
    assert len(table) > 5
    assert (table["parameter_count"].sub(3000).abs() <= 150).all()
    row = table.iloc[len(table) // 2]
    model = ELMNetwork(n_inputs=10, n_outputs=19, n_neurons=int(row.n_neurons), k_e=int(row.k_e), k_c=int(row.k_c))
    assert sum(p.numel() for p in model.parameters()) == row.parameter_count
    line = elm.budget_line(3000, n_inputs=10, n_outputs=19, n_values=(1, 4, 16, 64, 1000), k_c=8)
    assert line["n_neurons"].tolist() == [1, 4, 16]  # 64 and 1000 neurons cannot fit the budget
    assert line["k_e"].is_monotonic_decreasing
    synapse_line = elm.budget_line(1200, n_inputs=10, n_outputs=19, n_values=(4, 8, 16, 24), k_e=2)
    assert synapse_line["n_neurons"].tolist() == [8, 16, 24]  # 4 neurons cannot spend 1200 even fully wired
    assert (synapse_line["k_c"] <= 10 + synapse_line["n_neurons"]).all()
    assert synapse_line["k_c"].is_monotonic_decreasing and (synapse_line["k_e"] == 2).all()
    with pytest.raises(elm.ELMFamilyError, match="exactly one"):
        elm.budget_line(1200, n_inputs=10, n_outputs=19, n_values=(8,), k_e=2, k_c=4)


def test_budget_line_sweep_labels_extremes_and_a_prespecified_middle():
    config = elm.ELMConfig(task="onehot-adding", delay=4, k_c=8)
    variants = elm.budget_line_variants(config, {"budget": 3850, "n_values": [1, 2, 4, 8, 16, 32, 64]})
    roles = [v.tags["role"] for v in variants]
    assert roles[0] == "fewest" and roles[-1] == "most" and roles.count("middle") == 1
    assert [v.overrides["n_neurons"] for v in variants] == [1, 2, 4, 8, 16, 64]  # 32 neurons miss the budget
    assert all(abs(v.tags["parameter_count"] - 3850) <= 385 for v in variants)
    axis = elm.axis_variants(config, {"axis": "k_e", "values": [4, 1, 2]})
    assert [v.label for v in axis] == ["k_e=1", "k_e=2", "k_e=4"]
    with pytest.raises(elm.ELMFamilyError, match="at least 3"):
        elm.budget_line_variants(config, {"budget": 3850, "n_values": [1, 64]})
