"""Sequential/parallel bottleneck autoencoders: mechanism, exact information, determinism, resuming, the switch
(continuing from a parent, first-sent bits), sweeps, export, and the headline plug-ins on a tiny pipeline."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import mutual_info_score

from brainres.data.io import read_netcdf, write_netcdf
from brainres.data.schema import validate
from brainres.families import seqpar
from brainres.families.seqpar import training
from brainres.hashing import canonical_hash
from brainres.settings import SettingsError

# Small enough to train in a few seconds on one core.
TINY = seqpar.SeqParConfig(input_dim=4, bottleneck_width=4, n_steps=2, epochs=100, batch_size=4, learning_rate=1e-2)
# The switch at toy size: k = 1 of D = 3, a small network.
SMALL = seqpar.SeqParConfig(input_dim=3, bottleneck_width=1, n_steps=3, hidden_size=16, epochs=6, batch_size=4)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def same_weights(left, right) -> bool:
    a, b = left.state_dict(), right.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- exact information, checked by hand and against an independent implementation ---


def test_partition_entropy_by_hand():
    inputs = seqpar.all_binary_vectors(2).numpy().astype(int)  # 00, 01, 10, 11
    uniform = np.full(4, 0.25)
    assert seqpar.partition_entropy(np.zeros(4, dtype=int), uniform) == 0.0  # a constant code says nothing
    assert seqpar.partition_entropy(inputs[:, 0], uniform) == pytest.approx(1.0)  # one bit
    assert seqpar.partition_entropy(inputs[:, 0] ^ inputs[:, 1], uniform) == pytest.approx(1.0)  # parity: one bit
    assert seqpar.partition_entropy(inputs, uniform) == pytest.approx(2.0)  # both bits
    skewed = np.array([0.5, 0.25, 0.25, 0.0])
    # code = first bit: cells {00, 01} (mass 0.75) and {10, 11} (mass 0.25)
    expected = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert seqpar.partition_entropy(inputs[:, 0], skewed) == pytest.approx(expected)
    with pytest.raises(seqpar.SeqParError, match="sum to 1"):
        seqpar.partition_entropy(inputs[:, 0], np.full(4, 0.5))


def test_information_measures_by_enumeration_of_a_hand_built_code():
    inputs = seqpar.all_binary_vectors(3).numpy().astype(int)
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
    curve = seqpar.curve_measures(result["transmitted_bits"], target_bits=3.0, width=1)
    assert math.isnan(curve["steps_to_transmit"]) and math.isnan(curve["bits_per_step"])  # 3 bits never arrive
    assert curve["area_efficiency"] == pytest.approx(4 / 6) and curve["parallel_limit"] == pytest.approx(1 / 3)


def test_information_matches_sklearn_mutual_information_on_random_codes():
    rng = np.random.default_rng(3)
    inputs = seqpar.all_binary_vectors(4).numpy().astype(int)
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


def test_arrival_and_transmit_steps():
    bit_information = np.array([[1.0, 0.0, 0.0], [1.0, 0.95, 0.0], [1.0, 1.0, 0.0]])
    arrivals = seqpar.arrival_steps(bit_information, np.array([1.0, 1.0, 0.0]))
    np.testing.assert_array_equal(arrivals[:2], [1, 2])
    assert np.isnan(arrivals[2])  # a constant bit has nothing to arrive
    assert seqpar.steps_to_transmit(np.array([1.0, 1.96, 2.0]), target_bits=2.0) == 2.0  # within 0.05 bits


def test_input_probabilities_and_stimulus_ids():
    p = seqpar.input_probabilities(4, (0, 3))
    inputs = seqpar.all_binary_vectors(4).numpy()
    assert p.sum() == pytest.approx(1)
    assert np.all(p[(inputs[:, 0] == 1) | (inputs[:, 3] == 1)] == 0)
    assert np.count_nonzero(p) == 4
    ids = seqpar.stimulus_ids(8)
    assert ids[42] == "binary-D8-0042" and len(set(ids)) == 256


# --- the mechanism ---


def test_straight_through_sample_is_hard_forward_and_has_a_gradient():
    logits = torch.tensor([[-0.3, 0.2, 4.0]], requires_grad=True)
    sample = seqpar.straight_through_binary(logits, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert set(sample.detach().unique().tolist()) <= {-1.0, 1.0}
    sample.sum().backward()
    assert torch.all(logits.grad > 0)  # the relaxed sample carries the gradient


def test_without_feedback_the_code_repeats_so_information_cannot_grow():
    # Holds for any weights: the encoder sees the same input at every step.
    config = seqpar.SeqParConfig(input_dim=4, bottleneck_width=1, n_steps=4, feedback=False)
    torch.manual_seed(0)
    model = seqpar.build_model(config)
    result = seqpar.evaluate(model)
    codes = result["codes"]
    assert np.array_equal(codes, np.repeat(codes[:, :1], 4, axis=1))
    np.testing.assert_allclose(result["transmitted_bits"], result["transmitted_bits"][0])
    # ... while with feedback the same weights compute different pre-activations at different steps
    inputs = seqpar.all_binary_vectors(4)
    with torch.no_grad():
        logits = model(inputs, stochastic=False)["code_logits"]
        assert torch.equal(logits[:, 0], logits[:, 1])
        model.feedback = True
        logits = model(inputs, stochastic=False)["code_logits"]
    assert not torch.allclose(logits[:, 0], logits[:, 1])


def test_feedback_lets_a_one_unit_bottleneck_send_more_than_one_bit():
    config = seqpar.SeqParConfig(input_dim=3, bottleneck_width=1, n_steps=3, epochs=100, batch_size=2,
                                 learning_rate=3e-3)
    with_feedback = seqpar.evaluate(seqpar.train(config, 0).model)["transmitted_bits"]
    # Without feedback the bound holds whatever the training, so a short run suffices.
    no_feedback_config = config.replace(feedback=False, epochs=20)
    without = seqpar.evaluate(seqpar.train(no_feedback_config, 0).model)["transmitted_bits"]
    assert without[-1] <= 1.0 + 1e-9  # one binary unit, one repeated code: at most one bit
    assert with_feedback[0] <= 1.0 + 1e-9
    assert with_feedback[-1] >= 1.9  # later steps carried new bits


def test_width_D_bottleneck_reconstructs_at_step_one():
    result = seqpar.evaluate(seqpar.train(TINY, 0).model)
    assert result["transmitted_bits"][0] == pytest.approx(4.0)  # every input has its own code at step 1
    assert result["reconstruction_error"][:, 0].mean() <= 0.05
    assert seqpar.sequential_parallel_index(result["transmitted_bits"]) == pytest.approx(1.0)


# --- determinism, resuming, settings ---


def test_same_seed_same_numbers_and_different_seed_different_numbers():
    config = TINY.replace(epochs=5)
    first, second, other = seqpar.train(config, 7), seqpar.train(config, 7), seqpar.train(config, 8)
    columns = ["epoch", "loss_bits", "final_error"]  # not the wall-clock seconds
    assert first.log[columns].equals(second.log[columns]) and same_weights(first.model, second.model)
    assert not first.log["loss_bits"].equals(other.log["loss_bits"])


def test_a_run_stopped_or_crashed_between_checkpoints_resumes_to_the_same_weights(tmp_path, monkeypatch):
    config = SMALL.replace(epochs=training.CHECKPOINT_EVERY + 12)
    straight = seqpar.train(config, 3)
    stopped = seqpar.train(config, 3, run_dir=tmp_path / "stopped", stop_after_epoch=training.CHECKPOINT_EVERY + 5)
    assert len(stopped.log) == training.CHECKPOINT_EVERY + 5
    resumed = seqpar.train(config, 3, run_dir=tmp_path / "stopped")
    assert same_weights(resumed.model, straight.model) and resumed.log["loss_bits"].equals(straight.log["loss_bits"])
    # A crash 5 epochs after the first checkpoint loses those epochs; the rerun redoes them identically.
    real_epoch, calls = training._epoch, []

    def crashing(*args):
        calls.append(1)
        if len(calls) > training.CHECKPOINT_EVERY + 5:
            raise KeyboardInterrupt
        return real_epoch(*args)

    monkeypatch.setattr(training, "_epoch", crashing)
    with pytest.raises(KeyboardInterrupt):
        seqpar.train(config, 3, run_dir=tmp_path / "crashed")
    monkeypatch.setattr(training, "_epoch", real_epoch)
    assert torch.load(tmp_path / "crashed" / "checkpoint.pt", weights_only=True)["epoch"] == training.CHECKPOINT_EVERY
    with pytest.raises(seqpar.SeqParError, match="stopped after epoch"):
        seqpar.load(config, tmp_path / "crashed")
    again = seqpar.train(config, 3, run_dir=tmp_path / "crashed")
    assert same_weights(again.model, straight.model)
    loaded = seqpar.load(config, tmp_path / "crashed")
    assert same_weights(loaded.model, straight.model) and len(loaded.log) == config.epochs


def test_settings_are_declared_checked_and_hashed():
    assert TINY.config_hash() == canonical_hash(TINY.to_dict())
    assert TINY.config_hash() == seqpar.SeqParConfig.from_dict({**TINY.to_dict(), "fixed_bits": []}).config_hash()
    assert TINY.config_hash() != TINY.replace(bottleneck_width=2).config_hash()
    assert seqpar.SeqParConfig(input_dim=4, task="fixed", fixed_bits=[3, 0]).fixed_bits == (3, 0)
    for values, match in [({"bottleneck_width": 0}, "bottleneck_width"),
                          ({"input_dim": 4, "task": "fixed", "fixed_bits": [5]}, "outside 0..3"),
                          ({"task": "fixed"}, "needs at least one position"),
                          ({"fixed_bits": [1]}, "takes no fixed_bits"),
                          ({"input_dim": 2, "task": "fixed", "fixed_bits": [0, 1]}, "at least one input bit free"),
                          ({"fixed_bits": "first"}, "first_sent"),
                          ({"input_dim": 2, "bottleneck_width": 2, "evaluate_fixed_bits": "first_sent"}, "none of"),
                          ({"bottleneck": "analog"}, "one of 'discrete', 'continuous'"),
                          ({"input_dim": 13}, "input_dim")]:
        with pytest.raises(SettingsError, match=match):
            seqpar.SeqParConfig.from_dict(values)
    with pytest.raises(seqpar.SeqParError, match="seed"):
        seqpar.train(TINY, 1.5)
    assert seqpar.SeqParConfig().pressures() == {"bottleneck_width": 2, "n_steps": 6, "feedback": True}
    assert seqpar.SeqParConfig(bottleneck="continuous", noise_std=0.3).pressures()["noise_std"] == 0.3
    assert seqpar.SeqParConfig(input_dim=8, task="fixed", fixed_bits=[0, 1]).task_name() == "binary-D8-fixed-0-1"
    text = seqpar.describe(SMALL.replace(task="fixed", fixed_bits="first_sent"))
    assert "held at 0" in text and "parent" in text and "16 units" in text


# --- the switch: continuing from a parent, first-sent bits ---


def test_a_continued_run_starts_from_the_parents_weights_and_draws_from_the_phase_2_stream():
    parent = seqpar.train(SMALL, 4)
    kept = copy.deepcopy(parent.model.state_dict())
    unchanged = seqpar.train(SMALL.replace(epochs=0), 4, parent=parent)
    assert same_weights(unchanged.model, parent.model)  # a copy of the parent's weights, not fresh ones
    child = seqpar.train(SMALL.replace(epochs=3, learning_rate=1e-2), 4, parent=parent)
    assert child.extras["generation"] == 1 and child.extras["generator_seed"] == 4 + 1_000_000
    assert all(torch.equal(kept[k], v) for k, v in parent.model.state_dict().items())  # the parent is untouched

    def by_hand(stream):  # what the old train(model=parent) did: a copy, a fresh Adam, one generator
        model = copy.deepcopy(parent.model)
        generator = torch.Generator().manual_seed(stream)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        with torch.random.fork_rng(devices=[]):
            torch.use_deterministic_algorithms(True)
            try:
                for _ in range(3):
                    training._epoch(model, optimizer, seqpar.all_binary_vectors(3), generator, SMALL.batch_size)
            finally:
                torch.use_deterministic_algorithms(False)
        return model

    assert same_weights(child.model, by_hand(4 + 1_000_000)) and not same_weights(child.model, by_hand(4))
    with pytest.raises(seqpar.SeqParError, match="same seed"):
        seqpar.train(SMALL, 5, parent=parent)
    with pytest.raises(seqpar.SeqParError, match="hidden_size"):
        seqpar.train(SMALL.replace(hidden_size=8), 4, parent=parent)


def test_first_sent_bits_are_resolved_from_the_parent_and_kept_through_a_reload(tmp_path):
    parent = seqpar.train(SMALL, 2)
    expected = seqpar.first_sent_bits(seqpar.evaluate(parent.model)["bit_information"], 1)
    assert seqpar.first_sent_of(parent) == expected
    after_config = SMALL.replace(task="fixed", fixed_bits="first_sent", epochs=3)
    after = seqpar.train(after_config, 2, parent=parent, run_dir=tmp_path)
    assert after.extras["fixed_bits"] == expected and after.extras["switch_bits"] == expected
    loaded = seqpar.load(after_config, tmp_path)
    assert loaded.extras == after.extras
    measures = seqpar.measure(after_config, [loaded])
    inputs = seqpar.all_binary_vectors(3).numpy()
    probability = measures["input_probability"].sel(seed=2).values
    assert np.all(probability[inputs[:, expected[0]] == 1] == 0) and measures["target_bits"].item() == 2.0
    assert measures["fixed_bit"].sel(seed=2).values.tolist() == [int(b in expected) for b in range(3)]
    # before (own code) and a control (its parent's code) are measured under the same distribution
    before = seqpar.measure(SMALL.replace(evaluate_fixed_bits="first_sent"),
                            [seqpar.train(SMALL.replace(evaluate_fixed_bits="first_sent"), 2)])
    control_config = SMALL.replace(epochs=3, evaluate_fixed_bits="first_sent")
    control = seqpar.measure(control_config, [seqpar.train(control_config, 2, parent=parent)])
    for ds in (before, control):
        np.testing.assert_array_equal(ds["fixed_bit"].values, measures["fixed_bit"].values)
    with pytest.raises(seqpar.SeqParError, match="no parent"):
        seqpar.train(after_config, 2)


def test_sweeps_expand_to_the_right_variants():
    widths = seqpar.width_variants(SMALL, {"widths": [2, 1]})
    assert [(v.label, v.overrides, v.continue_from) for v in widths] == [
        ("k=1", {"bottleneck_width": 1}, None), ("k=2", {"bottleneck_width": 2}, None)]
    variants = seqpar.switch_variants(SMALL, {"switch_epochs": 5, "epochs": [5, 9], "learning_rates": [0.01],
                                              "temperatures": [0.5, 1.0]})
    assert [v.label for v in variants] == ["before", "after", "control", "after epochs=9", "control epochs=9",
                                           "after lr=0.01", "after T=0.5"]
    by_label = {v.label: v for v in variants}
    assert by_label["before"].continue_from is None and by_label["before"].overrides == {
        "evaluate_fixed_bits": "first_sent"}
    assert all(v.continue_from == "before" for v in variants[1:])
    assert by_label["after"].overrides == {"task": "fixed", "fixed_bits": "first_sent", "epochs": 5}
    assert by_label["control"].overrides == {"epochs": 5, "evaluate_fixed_bits": "first_sent"}
    assert by_label["after lr=0.01"].overrides["learning_rate"] == 0.01
    assert by_label["after T=0.5"].overrides["temperature"] == 0.5 and by_label["after T=0.5"].tags["knob"] == (
        "temperature")
    assert by_label["control epochs=9"].tags == {"phase": "control", "knob": "epochs", "switch_epochs": 9,
                                                 "learning_rate": SMALL.learning_rate, "temperature": 1.0}
    explicit = seqpar.switch_variants(SMALL, {"switch_epochs": 5, "fixed_bits": [2, 0], "matched_controls": False,
                                              "epochs": [7]})
    assert [v.label for v in explicit] == ["before", "after", "control", "after epochs=7"]
    assert explicit[1].overrides["fixed_bits"] == [0, 2]
    for options, match in [({}, "switch_epochs"), ({"switch_epochs": 5, "epoch": [3]}, "switch_epochs"),
                           ({"switch_epochs": 5, "learning_rates": [0]}, "positive")]:
        with pytest.raises(seqpar.SeqParError, match=match):
            seqpar.switch_variants(SMALL, options)
    with pytest.raises(seqpar.SeqParError, match="uniform task"):
        seqpar.switch_variants(SMALL.replace(bottleneck="continuous"), {"switch_epochs": 5})
    with pytest.raises(seqpar.SeqParError, match="widths"):
        seqpar.width_variants(SMALL, {"width": [1]})


# --- export ---


def test_measure_exports_a_valid_dataset_that_round_trips(tmp_path):
    config = TINY.replace(epochs=3)
    ds = seqpar.measure(config, [seqpar.train(config, seed) for seed in (0, 1)])
    validate(ds, "model_measures")
    assert ds.attrs["model_family"] == "seqpar" and ds.attrs["config_hash"] == config.config_hash()
    assert ds.attrs["config"] == config.to_dict() and ds.attrs["pressures"]["bottleneck_width"] == 4
    assert list(ds["step"].values) == [1, 2] and ds["stimulus_id"].values[5] == "binary-D4-0005"
    assert ds["latent_code"].dims == ("seed", "stimulus_id", "step", "unit")
    assert ds["loss_bits"].dims == ("seed", "epoch") and ds.sizes["epoch"] == 3
    # the exported per-stimulus information averages to the transmitted bits
    mean_pointwise = ds["information_bits"].weighted(ds["input_probability"]).mean("stimulus_id")
    np.testing.assert_allclose(mean_pointwise.values, ds["transmitted_bits"].values)
    np.testing.assert_array_equal(ds["target_bits"].values, [4.0, 4.0])
    path = tmp_path / "seqpar.nc"
    write_netcdf(ds, path)
    back = read_netcdf(path)
    np.testing.assert_array_equal(back["latent_code"].values, ds["latent_code"].values)
    assert back.attrs["pressures"] == ds.attrs["pressures"] and back.attrs["config"] == ds.attrs["config"]
    with pytest.raises(seqpar.SeqParError, match="another configuration"):
        seqpar.measure(config.replace(epochs=4), [seqpar.train(config, 0)])


def test_continuous_bottleneck_exports_a_decoder_bound():
    config = TINY.replace(bottleneck="continuous", noise_std=0.3, epochs=3)
    run = seqpar.train(config, 0)
    ds = seqpar.measure(config, [run])
    assert "information_bits" not in ds and "decoded_bits" in ds and "arrival_step" not in ds
    assert ds.attrs["pressures"]["noise_std"] == 0.3
    again = seqpar.measure(config, [run])
    np.testing.assert_array_equal(ds["decoded_bits"].values, again["decoded_bits"].values)
    assert np.all(ds["transmitted_bits"].values <= 4 + 1e-9)


# --- the headline plug-ins, through the pipeline machinery ---


@pytest.fixture(scope="module")
def tiny_pipeline_results(tmp_path_factory):
    import pandas as pd

    from brainres.pipeline.config import parse_pipeline
    from brainres.pipeline.run import run_pipeline

    base = {"input_dim": 3, "n_steps": 3, "hidden_size": 16, "epochs": 8, "batch_size": 4, "learning_rate": 0.01}
    mapping = {
        "run": {"name": "tiny-seqpar"},
        "model": [{"name": "widths", "family": "seqpar", "seeds": [0, 1], "seqpar": base,
                   "sweep": {"kind": "widths", "widths": [1, 3]}},
                  {"name": "switch", "family": "seqpar", "seeds": [0, 1], "seqpar": {**base, "bottleneck_width": 1},
                   "sweep": {"kind": "switch", "switch_epochs": 4, "learning_rates": [0.03]}}],
        "comparison": [{"kind": "seqpar-widths", "model": "widths"}, {"kind": "seqpar-switch", "model": "switch"}],
    }
    run_dir = tmp_path_factory.mktemp("seqpar-pipeline")
    torch.set_num_threads(1)
    run_pipeline(parse_pipeline(mapping), run_dir, executor="in-process", progress=False, quiet=True)
    return run_dir, pd.read_csv(run_dir / "results.csv")


def test_width_plugin_on_a_tiny_pipeline_gives_intervals_and_figures(tiny_pipeline_results):
    from brainres.pipeline.store import load_result

    run_dir, table = tiny_pipeline_results
    widths = table[table["comparison"] == "seqpar-widths"]
    assert {"bits_step_1", "bits_final", "sequential_parallel_index", "steps_to_transmit", "bits_per_step",
            "area_efficiency"} <= set(widths["statistic"])
    full = widths[(widths["statistic"] == "bits_step_1") & (widths["variant"] == "k=3")]
    assert full["ci_low"].notna().all() and full["ci_high"].notna().all()
    index = widths[widths["statistic"] == "sequential_parallel_index"]
    assert sorted(index["parallel_limit"].round(3)) == [0.333, 1.0] and index["p_adjusted"].notna().all()
    assert widths["label"].notna().all() and (widths["n_unit"] == "seeds").all()
    result = load_result(next((run_dir / "results").glob("seqpar-widths*")))
    assert set(result.figures) == {"information", "index"}
    information = result.figures["information"]
    assert information["y"].dims == ("series", "x") and list(information["series"].values) == ["k=1", "k=3"]
    assert np.all(information["y_low"].values <= information["y"].values + 1e-12)


def test_switch_plugin_on_a_tiny_pipeline_gives_paired_differences_and_figures(tiny_pipeline_results):
    from brainres.pipeline.store import load_result

    run_dir, table = tiny_pipeline_results
    switch = table[table["comparison"] == "seqpar-switch"]
    step1 = switch[switch["statistic"] == "bits_step_1"]
    assert list(step1["variant"]) == ["before", "after", "control", "after lr=0.03"]
    assert (step1["ideal"] == 1.0).all() and step1["ci_low"].notna().all()
    differences = switch[switch["statistic"] == "bits_step_1 difference"]
    assert set(differences["label"]) == {
        "after minus control: bits at step 1", "after minus before: bits at step 1",
        "after lr=0.03 minus control: bits at step 1", "after lr=0.03 minus before: bits at step 1"}
    assert (differences["family_size"] <= 4).all() and differences["p_adjusted"].notna().any()
    assert {"schedule_change", "arrival_changed", "steps_to_transmit", "mean_arrival_step"} <= set(switch["statistic"])
    headline = switch[switch["statistic"] == "reorganised_to_ideal"]
    assert len(headline) == 1 and headline["label"].iloc[0].startswith("headline: ")
    result = load_result(next((run_dir / "results").glob("seqpar-switch*")))
    assert set(result.figures) == {"curves", "step1"}
    assert list(result.figures["step1"]["series"].values)[-1] == "ideal"


def test_shipped_pipelines_check_with_their_variants():
    from importlib.resources import as_file, files

    from brainres.pipeline.run import check

    expected = {"seqpar.toml": {"widths": 5, "widths-no-feedback": 2, "switch": 3},
                "seqpar-reorganisation.toml": {"reorganisation": 11}}
    for name, models in expected.items():
        with as_file(files("brainres.pipelines").joinpath(name)) as path:
            checked = check(path)
        assert {model: len(checked.model(model).variants) for model in models} == models
    assert [config.temperature for variant, config in checked.model("reorganisation").variants
            if variant.tags["knob"] == "temperature"] == [0.5, 2.0, 4.0]


@pytest.mark.slow
def test_headline_parallel_at_full_width_and_sequential_below():
    base = seqpar.SeqParConfig(input_dim=6, n_steps=6, epochs=500, batch_size=16)
    for width in (2, 6):
        config = base.replace(bottleneck_width=width)
        ds = seqpar.measure(config, [seqpar.train(config, seed) for seed in (0, 1)])
        if width == 6:
            assert (ds["sequential_parallel_index"].values >= 0.95).all()
        else:
            assert (ds["transmitted_bits"].sel(step=1).values <= 2 + 1e-9).all()
            assert (ds["transmitted_bits"].sel(step=6).values >= 4).all()  # later steps carried new bits
