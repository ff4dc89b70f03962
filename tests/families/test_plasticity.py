"""Tests of the grow / prune plasticity family.

Each mechanism test compares against a hand-built reference or a property
that would break if the mechanism were removed (zero outgoing weights,
Net2Net function preservation, exact pruning, GradMax optimality, Adam state
surgery, continual-backprop replacement, unit bookkeeping, resuming, task
switches); the headline plug-ins run on tiny pipelines.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import xarray as xr

import brainres
from brainres.data.io import read_netcdf, write_netcdf
from brainres.families import plasticity as family
from brainres.settings import SettingsError

TRUNKS = ("mlp", "conv")


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def digits():
    return brainres.load_stimuli("digits")


def _model(trunk, widths=(6, 5), dtype=torch.float64, seed=0, activation="gelu"):
    torch.manual_seed(seed)
    if trunk == "mlp":
        model = family.PlasticMLP(n_inputs=64, widths=widths, n_classes=10, activation=activation)
    else:
        model = family.PlasticConvNet(in_channels=1, widths=widths, n_classes=10, activation=activation)
    return model.to(dtype)


def _batch(n=24, seed=1, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 8, 8, generator=generator, dtype=dtype)
    labels = torch.randint(0, 10, (n,), generator=generator)
    return images, labels


def _gradient_norms(model, layer, images, labels):
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(images), labels).backward()
    return family.incoming_gradient_norms(model, layer)


def _tiny_config(**overrides):
    values = dict(trunk="mlp", widths=(8, 8), epochs=2, batch_size=64, first_change_step=5, change_interval=5,
                  n_changes=2, units_per_change=2, ratio_window=6, eval_every=5, track_every=5, retrain=False)
    values.update(overrides)
    return family.PlasticityConfig(**values)


def _same_weights(left, right) -> bool:
    a, b = left.state_dict(), right.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------- insertion
@pytest.mark.parametrize("trunk", TRUNKS)
@pytest.mark.parametrize("layer", [0, 1])
def test_zero_outgoing_insertion_gets_exactly_zero_incoming_gradient(trunk, layer):
    images, labels = _batch()
    model = _model(trunk)
    before = model(images).detach()
    family.insert_units(model, layer, 3, method="zero", generator=torch.Generator().manual_seed(2))
    assert torch.equal(model.outgoing(layer).weight[:, -3:], torch.zeros_like(model.outgoing(layer).weight[:, -3:]))
    torch.testing.assert_close(model(images), before, rtol=0, atol=1e-12)
    norms = _gradient_norms(model, layer, images, labels)
    assert torch.all(norms[-3:] == 0)
    assert torch.all(norms[:-3] > 0)
    # Control: the same insertion with random outgoing weights does receive a gradient.
    random = _model(trunk)
    family.insert_units(random, layer, 3, method="random", generator=torch.Generator().manual_seed(2))
    assert torch.all(_gradient_norms(random, layer, images, labels)[-3:] > 0)


def test_random_insertion_follows_default_init_bounds():
    model = _model("mlp", widths=(10, 4))
    family.insert_units(model, 0, 6, method="random", generator=torch.Generator().manual_seed(0))
    assert model.widths == (16, 4)
    assert model.hidden[0].weight[-6:].abs().max() <= 1 / np.sqrt(64)
    # outgoing bound uses the grown fan-in of the next layer (16)
    assert model.hidden[1].weight[:, -6:].abs().max() <= 1 / np.sqrt(16)
    assert model.hidden[1].in_features == 16 and model.hidden[0].out_features == 16


@pytest.mark.parametrize("trunk", TRUNKS)
@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_net2net_split_preserves_the_function(trunk, layer, noise):
    images, _ = _batch()
    model = _model(trunk)
    before = model(images).detach()
    old_out = model.outgoing(layer).weight.detach().clone()
    sources = torch.tensor([4, 1])
    family.insert_units(model, layer, 2, method="split", generator=torch.Generator().manual_seed(3),
                         split_from=sources, split_noise=noise)
    torch.testing.assert_close(model(images), before, rtol=0, atol=1e-12)
    w_in = model.hidden[layer].weight.detach()
    assert torch.equal(w_in[-2:], w_in[sources])
    w_out = model.outgoing(layer).weight.detach()
    torch.testing.assert_close(w_out[:, sources] + w_out[:, -2:], old_out[:, sources], rtol=0, atol=1e-14)
    # Noise breaks the symmetry between a unit and its copy (and only noise does).
    assert torch.equal(w_out[:, sources], w_out[:, -2:]) == (noise == 0)


def test_split_rejects_repeated_or_out_of_range_sources():
    model = _model("mlp")
    with pytest.raises(family.PlasticityError, match="distinct"):
        family.insert_units(model, 0, 2, method="split", generator=torch.Generator(), split_from=[1, 1])
    with pytest.raises(family.PlasticityError, match="0..5"):
        family.insert_units(model, 0, 1, method="split", generator=torch.Generator(), split_from=[6])


@pytest.mark.parametrize("trunk", TRUNKS)
def test_gradmax_preserves_function_and_maximises_newborn_gradient(trunk):
    images, labels = _batch(n=32)
    layer = 0
    model = _model(trunk)
    before = model(images).detach()
    family.insert_units(model, layer, 1, method="gradmax", generator=torch.Generator().manual_seed(0),
                         gradmax_batch=(images, labels), gradmax_scale=1.0)
    torch.testing.assert_close(model(images), before, rtol=0, atol=1e-12)
    assert torch.all(model.hidden[layer].weight[-1] == 0)
    best = float(_gradient_norms(model, layer, images, labels)[-1])
    assert best > 0
    # Any other unit-norm outgoing vector gives a smaller incoming gradient.
    generator = torch.Generator().manual_seed(5)
    for _ in range(20):
        other = _model(trunk)
        family.insert_units(other, layer, 1, method="zero", generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            other.hidden[layer].weight[-1].zero_()
            other.hidden[layer].bias[-1].zero_()
            direction = torch.randn(other.outgoing(layer).weight[:, -1].shape, generator=generator,
                                    dtype=torch.float64)
            other.outgoing(layer).weight[:, -1] = direction / direction.norm()
        assert float(_gradient_norms(other, layer, images, labels)[-1]) <= best + 1e-12


def test_gradmax_refuses_relu():
    images, labels = _batch()
    model = _model("mlp", activation="relu")
    with pytest.raises(family.PlasticityError, match="relu"):
        family.insert_units(model, 0, 1, method="gradmax", generator=torch.Generator(), gradmax_batch=(images, labels))


# ---------------------------------------------------------------- removal
@pytest.mark.parametrize("trunk", TRUNKS)
@pytest.mark.parametrize("layer", [0, 1])
def test_pruning_removes_exactly_the_chosen_units(trunk, layer):
    images, _ = _batch()
    model = _model(trunk)
    chosen = torch.tensor([0, 3])

    # Reference: the unpruned network with the chosen units' outputs silenced.
    def silence(_module, _inputs, output):
        output = output.clone()
        output[:, chosen] = 0
        return output

    handle = model.hidden[layer].register_forward_hook(silence)
    expected = model(images).detach()
    handle.remove()
    old_in = model.hidden[layer].weight.detach().clone()
    old_out = model.outgoing(layer).weight.detach().clone()
    width = old_in.shape[0]
    family.remove_units(model, layer, chosen)
    keep = torch.tensor([unit for unit in range(width) if unit not in (0, 3)])
    assert model.widths[layer] == width - 2
    assert torch.equal(model.hidden[layer].weight, old_in[keep])
    assert torch.equal(model.outgoing(layer).weight, old_out[:, keep])
    torch.testing.assert_close(model(images), expected, rtol=0, atol=1e-12)


def test_magnitude_pruning_chooses_the_smallest_products():
    model = _model("mlp", widths=(5, 3))
    with torch.no_grad():
        model.hidden[0].weight.fill_(1.0)
        model.hidden[1].weight.fill_(1.0)
        model.hidden[0].weight[2] *= 0.1
        model.hidden[1].weight[:, 4] *= 0.5
    chosen = family.lowest_units(family.magnitude_scores(model, 0), 2)
    assert chosen.tolist() == [2, 4]


def test_remove_units_validates():
    model = _model("mlp")
    with pytest.raises(family.PlasticityError, match="all 6 units"):
        family.remove_units(model, 0, range(6))
    with pytest.raises(family.PlasticityError, match="layer"):
        family.remove_units(model, 5, [0])


# ------------------------------------------------------- optimizer state
def _adam_after_steps(model, images, labels, steps=3):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return optimizer


@pytest.mark.parametrize("trunk", TRUNKS)
def test_adam_state_keep_copies_incumbents_and_zeroes_newborns(trunk):
    images, labels = _batch()
    model = _model(trunk)
    optimizer = _adam_after_steps(model, images, labels)
    old = family.adam_state_by_name(model, optimizer)
    old_in = {k: v.clone() for k, v in old["hidden.0.weight"].items()}
    old_out = {k: v.clone() for k, v in old["hidden.1.weight"].items()}
    # Two consecutive changes touch hidden.1.weight twice: columns (layer 0) then rows (layer 1).
    maps = family.merge_index_maps(
        family.insert_units(model, 0, 2, method="random", generator=torch.Generator().manual_seed(0)),
        family.remove_units(model, 1, [1]),
    )
    fresh = torch.optim.Adam(model.parameters(), lr=1e-2)
    family.transplant_adam_state(old, model, fresh, maps, mode="keep")
    state_in = fresh.state[model.hidden[0].weight]
    assert torch.equal(state_in["exp_avg"][:6], old_in["exp_avg"])
    assert torch.all(state_in["exp_avg"][6:] == 0) and torch.all(state_in["exp_avg_sq"][6:] == 0)
    assert float(state_in["step"]) == 3
    state_out = fresh.state[model.hidden[1].weight]
    keep_rows = torch.tensor([0, 2, 3, 4])
    assert state_out["exp_avg_sq"].shape == model.hidden[1].weight.shape
    assert torch.equal(state_out["exp_avg_sq"][:, :6], old_out["exp_avg_sq"][keep_rows])
    assert torch.all(state_out["exp_avg_sq"][:, 6:] == 0)
    # The optimizer can step with the transplanted state.
    fresh.zero_grad()
    F.cross_entropy(model(images), labels).backward()
    fresh.step()


def test_adam_state_reset_starts_afresh():
    images, labels = _batch()
    model = _model("mlp")
    optimizer = _adam_after_steps(model, images, labels)
    old = family.adam_state_by_name(model, optimizer)
    maps = family.insert_units(model, 0, 2, method="random", generator=torch.Generator())
    fresh = torch.optim.Adam(model.parameters(), lr=1e-2)
    family.transplant_adam_state(old, model, fresh, maps, mode="reset")
    assert len(fresh.state) == 0
    with pytest.raises(family.PlasticityError, match="optimizer_state"):
        family.transplant_adam_state(old, model, fresh, maps, mode="zero")


# ----------------------------------------------------- continual backprop
@pytest.mark.parametrize("trunk", TRUNKS)
def test_reinitialized_units_are_silent_fresh_and_lose_their_moments(trunk):
    images, labels = _batch()
    model = _model(trunk)
    optimizer = _adam_after_steps(model, images, labels)

    def silence(_module, _inputs, output):
        output = output.clone()
        output[:, [2, 5]] = 0
        return output

    handle = model.hidden[0].register_forward_hook(silence)
    before = model(images).detach()
    handle.remove()
    old_in = model.hidden[0].weight.detach().clone()
    old = family.adam_state_by_name(model, optimizer)
    maps = family.reinitialize_units(model, 0, [2, 5], generator=torch.Generator().manual_seed(0))
    family.transplant_adam_state(old, model, optimizer, maps, mode="keep")
    torch.testing.assert_close(model(images), before, rtol=0, atol=1e-12)
    assert torch.all(model.outgoing(0).weight[:, [2, 5]] == 0)
    assert not torch.equal(model.hidden[0].weight[[2, 5]], old_in[[2, 5]])
    assert torch.equal(model.hidden[0].weight[[0, 1, 3, 4]], old_in[[0, 1, 3, 4]])
    state = optimizer.state[model.hidden[0].weight]
    assert torch.all(state["exp_avg"][[2, 5]] == 0) and torch.any(state["exp_avg"][[0, 1]] != 0)


# ----------------------------------------------------- continual backprop
def test_continual_backprop_replaces_low_utility_units_during_training(digits):
    config = _tiny_config(schedule="none", n_changes=0, units_per_change=0, replacement_rate=0.05,
                          maturity_threshold=5, epochs=2)
    run = family.train(config, 0, stimuli=digits)
    lifetimes = run.extras["unit_lifetimes"]
    replaced = lifetimes[lifetimes["removal_step"].notna()]
    assert len(replaced) > 0
    assert (replaced["removal_step"] - replaced["birth_step"] > config.maturity_threshold).all()
    assert (lifetimes["birth_step"] > 0).sum() == len(replaced)  # one newborn per replaced unit
    assert run.extras["final_widths"] == (8, 8)
    off = family.train(config.replace(replacement_rate=0.0), 0, stimuli=digits)
    assert off.extras["unit_lifetimes"]["removal_step"].isna().all()


# ------------------------------------------------------------ training
def test_training_tracks_units_and_gradient_ratio(digits):
    config = _tiny_config(schedule="grow", insertion="zero", change_layers=(0, 1))
    run = family.train(config, 0, stimuli=digits)
    assert run.extras["final_widths"] == (12, 12)
    lifetimes = run.extras["unit_lifetimes"]
    assert sorted(lifetimes.loc[lifetimes["birth_step"] > 0, "birth_step"].unique()) == [5, 10]
    ratio = run.extras["gradient_ratio"]
    # Zero outgoing weights: exactly no incoming gradient at insertion, then some.
    assert (ratio.loc[ratio["steps_since_insertion"] == 0, "gradient_ratio"] == 0).all()
    assert (ratio.loc[ratio["steps_since_insertion"] == 1, "gradient_ratio"] > 0).all()
    assert set(ratio["insertion"]) == {0, 1} and set(ratio["layer"]) == {0, 1}
    units = run.extras["units"]
    counts = units.groupby(["step", "layer"]).size()
    assert counts.loc[(5, 0)] == 10 and counts.loc[(15, 1)] == 12  # tracked after each change
    assert run.extras["mean_parameters"] > family.build_model(config, (1, 8, 8), 10).n_parameters()


def test_pruning_schedule_removes_the_lowest_units(digits):
    config = _tiny_config(schedule="prune", removal="utility", widths=(10, 8))
    run = family.train(config, 0, stimuli=digits)
    assert run.extras["final_widths"] == (6, 8)
    lifetimes = run.extras["unit_lifetimes"]
    assert sorted(lifetimes["removal_step"].dropna().tolist()) == [5, 5, 10, 10]


def test_same_seed_same_numbers_and_seeds_differ(digits):
    config = _tiny_config(insertion="split")
    first = family.train(config, 3, stimuli=digits)
    second = family.train(config, 3, stimuli=digits)
    other = family.train(config, 4, stimuli=digits)
    assert first.log.equals(second.log)
    assert first.extras["step_log"].equals(second.extras["step_log"])
    assert list(first.log["epoch"]) == [1, 2] and first.log["step"].iloc[-1] == len(first.extras["step_log"])
    assert first.extras["gradient_ratio"].equals(second.extras["gradient_ratio"])
    assert np.array_equal(first.extras["held_out_predicted"], second.extras["held_out_predicted"])
    assert _same_weights(first.model, second.model)
    assert not first.extras["step_log"].equals(other.extras["step_log"])


def test_retraining_equals_a_static_run_of_the_final_widths(digits):
    config = _tiny_config(retrain=True)
    run = family.train(config, 1, stimuli=digits)
    static = family.train(config.replace(widths=config.final_widths(), schedule="none", retrain=False), 1,
                          stimuli=digits)
    assert run.extras["retrained_accuracy"] == static.extras["final_accuracy"]
    assert np.array_equal(run.extras["retrained_correct"], static.extras["held_out_correct"])


def test_held_out_split_is_deterministic_and_disjoint(digits):
    data = family.split_stimuli(digits, held_out_fraction=0.25, split_seed=0)
    again = family.split_stimuli(digits, held_out_fraction=0.25, split_seed=0)
    assert np.array_equal(data.held_out_ids, again.held_out_ids)
    assert len(data.held_out_ids) == 449 and data.train_labels.numel() == 1797 - 449
    other = family.split_stimuli(digits, held_out_fraction=0.25, split_seed=1)
    assert not np.array_equal(data.held_out_ids, other.held_out_ids)


# ------------------------------------------------------------ resuming
@pytest.mark.parametrize("overrides", [
    # 22 steps per epoch: both insertions (steps 30 and 35) come after the interruption at epoch 1.
    dict(schedule="grow", insertion="split", first_change_step=30, change_interval=5, epochs=3, retrain=True),
    dict(schedule="none", n_changes=0, units_per_change=0, replacement_rate=0.05, maturity_threshold=5, epochs=3),
], ids=["grow-after-interruption", "continual-backprop"])
def test_resume_after_stop_gives_the_weights_and_measures_of_a_straight_run(digits, tmp_path, overrides):
    config = _tiny_config(**overrides)
    straight = family.train(config, 2, stimuli=digits)
    stopped = family.train(config, 2, stimuli=digits, run_dir=tmp_path, stop_after_epoch=1)
    assert len(stopped.log) == 1 and stopped.extras == {} and stopped.model.widths == config.widths
    torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # plain values and tensors only
    resumed = family.train(config, 2, stimuli=digits, run_dir=tmp_path)
    assert _same_weights(resumed.model, straight.model)
    expected = family.measure(config, [straight])
    xr.testing.assert_identical(family.measure(config, [resumed]), expected)
    loaded = family.load(config, tmp_path, stimuli=digits)
    assert _same_weights(loaded.model, straight.model)
    xr.testing.assert_identical(family.measure(config, [loaded]), expected)
    if config.replacement_rate:  # replacements on both sides of the interruption
        removed = straight.extras["unit_lifetimes"]["removal_step"].dropna()
        assert (removed <= 22).any() and (removed > 22).any()
    else:
        assert straight.extras["changes"]["step"].tolist() == [30, 35] and "retrained_accuracy" in resumed.extras


# ------------------------------------------------------- task sequences
@pytest.mark.parametrize("sequence", ["permuted", "class-incremental"])
def test_task_sequence_switches_where_the_config_says(digits, sequence, monkeypatch):
    config = _tiny_config(schedule="none", n_changes=0, task_sequence=sequence, n_tasks=3, task_switch_every=7,
                          eval_every=3)
    trained_on, batches = [], []  # the pool is asked once per training step, for that step's task
    pool, stream_next = family.TaskSequence.pool, family.BatchStream.next
    monkeypatch.setattr(family.TaskSequence, "pool", lambda self, task: trained_on.append(task) or pool(self, task))
    monkeypatch.setattr(family.BatchStream, "next",
                        lambda self, *args: batches.append(stream_next(self, *args)) or batches[-1])
    run = family.train(config, 0, stimuli=digits)
    total = 2 * 22
    assert trained_on == [0] * 7 + [1] * 7 + [2] * (total - 14)
    data = family.split_stimuli(digits, held_out_fraction=0.25, split_seed=0)
    tasks = family.TaskSequence(config, data)
    assert len(batches) == total
    if sequence == "class-incremental":
        groups = [set(g.tolist()) for g in tasks.class_groups]
        assert groups == [{0, 1, 2, 3}, {4, 5, 6}, {7, 8, 9}]
        for step, batch in enumerate(batches, start=1):
            assert set(data.train_labels[batch].tolist()) <= groups[config.task_at(step)]
    else:
        images = data.held_out_images[:3]
        assert torch.equal(tasks.present(images, 0), images)
        moved = tasks.present(images, 1)
        assert not torch.equal(moved, images)
        assert torch.equal(moved.flatten(2).sort(dim=2).values, images.flatten(2).sort(dim=2).values)
    ends = run.extras["task_end"]
    assert ends["step"].tolist() == [7, 14, total] and ends["task"].tolist() == [0, 1, 2]
    ds = family.measure(config, [run])
    assert ds["task_accuracy"].dims == ("seed", "eval_step", "task")
    current = [config.task_at(int(s)) for s in ds["eval_step"].values]
    np.testing.assert_array_equal(ds["current_task_accuracy"].values[0],
                                  ds["task_accuracy"].values[0, np.arange(len(current)), current])
    # the accuracy of an evaluation is the mean over the tasks seen so far
    seen_mean = [ds["task_accuracy"].values[0, i, :c + 1].mean() for i, c in enumerate(current)]
    np.testing.assert_allclose(ds["held_out_accuracy"].values[0], seen_mean)
    assert ds["final_accuracy"].item() == pytest.approx(ds["final_task_accuracy"].values[0].mean())


def test_a_task_sequence_longer_than_training_is_refused(digits):
    config = _tiny_config(schedule="none", n_changes=0, task_sequence="permuted", n_tasks=10, task_switch_every=7)
    with pytest.raises(family.PlasticityFamilyError, match="need more than 63 steps"):
        family.train(config, 0, stimuli=digits)


# ---------------------------------------------------------------- export
def test_measure_validates_and_round_trips(digits, tmp_path):
    config = _tiny_config(trunk="conv", insertion="zero", retrain=True, replacement_rate=0.05, maturity_threshold=5)
    ds = family.measure(config, [family.train(config, seed, stimuli=digits) for seed in (0, 1)])
    brainres.validate(ds, "model_measures")
    assert ds.attrs["model_family"] == "plasticity"
    assert ds.attrs["config_hash"] == config.config_hash()
    assert ds.attrs["pressures"]["insertion"] == "zero"
    assert ds["correct"].dims == ("seed", "stimulus_id", "step")
    assert ds.sizes["stimulus_id"] == 449 and ds["stimulus_id"].values[0].startswith("digits-")
    assert ds["gradient_ratio"].dims == ("seed", "insertion_event", "hidden_layer", "steps_since_insertion")
    assert (ds["gradient_ratio"].sel(steps_since_insertion=0, hidden_layer=0) == 0).all()
    np.testing.assert_allclose(ds["final_accuracy"], ds["correct"].mean(("stimulus_id", "step")))
    np.testing.assert_allclose(ds["retrained_accuracy"], ds["retrained_correct"].mean("stimulus_id"))
    assert set(ds["unit_layer"].values.tolist()) == {0, 1}
    path = tmp_path / "plasticity.nc"
    write_netcdf(ds, path, validate_kind="model_measures")
    back = read_netcdf(path)
    np.testing.assert_array_equal(back["correct"].values, ds["correct"].values)
    np.testing.assert_array_equal(back["unit_birth_step"].values, ds["unit_birth_step"].values)


def test_measure_rejects_runs_of_another_config_and_unfinished_runs(digits, tmp_path):
    config = _tiny_config(epochs=2)
    run = family.train(config, 0, stimuli=digits)
    with pytest.raises(family.PlasticityFamilyError, match="another configuration"):
        family.measure(config.replace(learning_rate=1e-2), [run])
    stopped = family.train(config, 0, stimuli=digits, run_dir=tmp_path, stop_after_epoch=1)
    with pytest.raises(family.PlasticityFamilyError, match="unfinished"):
        family.measure(config, [stopped])


@pytest.mark.needs_data
def test_mnist_test_set_trains_and_exports(data_root):
    stimuli = brainres.load_stimuli("mnist-test")
    config = family.PlasticityConfig(task="mnist-test", epochs=1, first_change_step=30, ratio_window=20,
                                     eval_every=50, retrain=False)
    ds = family.measure(config, [family.train(config, 0, stimuli=stimuli)])
    assert ds.sizes["stimulus_id"] == 2500
    assert float(ds["final_accuracy"].item()) > 0.5  # ten classes: chance is 0.1
    assert np.isfinite(ds["gradient_ratio"].sel(hidden_layer=0).values).all()


# ---------------------------------------------------------------- config
def test_config_hash_is_canonical_and_sensitive():
    config = family.PlasticityConfig()
    assert config.config_hash() == family.PlasticityConfig.from_dict(config.to_dict()).config_hash()
    assert config.config_hash() != family.PlasticityConfig(insertion="split").config_hash()
    assert family.PlasticityConfig(widths=[32, 32]) == config
    with pytest.raises(SettingsError, match="did you mean 'widths'"):
        family.PlasticityConfig.from_dict({"width": [8]})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"trunk": "rnn"}, "trunk"),
        ({"insertion": "copy"}, "insertion"),
        ({"change_layers": (2,)}, "change_layers"),
        ({"change_layers": (0, 0)}, "change_layers.*distinct"),
        ({"schedule": "prune", "widths": (8, 8), "n_changes": 2, "units_per_change": 4}, "leaves 0"),
        ({"schedule": "grow", "n_changes": 0}, "n_changes >= 1"),
        ({"insertion": "gradmax", "activation": "relu"}, "gradmax"),
        ({"held_out_fraction": 1.0}, "held_out_fraction"),
        ({"replacement_rate": 1.0}, "replacement_rate"),
        ({"utility_decay": -0.1}, "utility_decay"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"split_noise": -1}, "split_noise"),
        ({"epochs": 0}, "epochs"),
        ({"first_change_step": 0}, "first_change_step"),
        ({"split_seed": -1}, "split_seed"),
        ({"trunk": "conv", "kernel_size": 4}, "odd"),
        ({"n_tasks": 3}, "task_sequence"),
        ({"task_sequence": "permuted"}, "n_tasks >= 2"),
    ],
)
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(SettingsError, match=message):
        family.PlasticityConfig(**overrides)


def test_config_lists_every_problem_at_once():
    with pytest.raises(SettingsError) as error:
        family.PlasticityConfig.from_dict({"trunk": "rnn", "epochs": 0, "insertion": "copy"})
    assert len(error.value.problems) == 3


def test_methods_text_says_what_ran():
    config = family.PlasticityConfig(trunk="conv", widths=(16, 16), schedule="prune", n_changes=2,
                                     units_per_change=3, replacement_rate=0.01, task_sequence="permuted", n_tasks=4,
                                     task_switch_every=55)
    text = family.describe(config)
    for phrase in ("convolutional", "16 x 16 channels", "pruned by 3 channels", "to 10 x 16", "0.01",
                   "4 pixel-permuted", "every 55 steps", "20 epochs"):
        assert phrase in text


# ---------------------------------------------------------------- sweeps
def _expanded(base, variants):
    return {v.label: family.PlasticityConfig.from_dict({**base.to_dict(), **v.overrides}) for v in variants}


def test_schedules_sweep_ends_every_arm_at_the_base_widths():
    base = family.PlasticityConfig(widths=(32, 32), change_layers=(0, 1), n_changes=4, units_per_change=4,
                                   first_change_step=60, change_interval=60)
    variants = family.FAMILY.sweeps["schedules"](base, {"schedules": ["static", "grow", "prune", "continual-backprop"],
                                                        "replacement_rate": 0.01})
    configs = _expanded(base, variants)
    assert list(configs) == ["static", "grow", "prune", "continual-backprop"]
    assert [v.tags["arm"] for v in variants] == list(configs)
    assert configs["grow"].widths == (16, 16) and configs["prune"].widths == (48, 48)
    assert {c.final_widths() for c in configs.values()} == {(32, 32)}
    assert configs["grow"].change_steps() == (60, 120, 180, 240)
    assert configs["static"].schedule == "none" and configs["static"].replacement_rate == 0
    assert configs["continual-backprop"].replacement_rate == 0.01 and not any(c.retrain for c in configs.values())
    with pytest.raises(family.PlasticityFamilyError, match="replacement_rate"):
        family.FAMILY.sweeps["schedules"](base, {"schedules": ["continual-backprop"]})
    with pytest.raises(family.PlasticityFamilyError, match="takes"):
        family.FAMILY.sweeps["schedules"](base, {"schedule": ["grow"]})


def test_insertion_sweep_crosses_trunks_and_methods():
    base = family.PlasticityConfig(widths=(32, 32), first_change_step=150, ratio_window=250, retrain=False)
    variants = family.FAMILY.sweeps["insertion"](base, {"trunks": ["mlp", "conv"], "insertions": ["random", "split"],
                                                        "widths": {"conv": [16, 16]}})
    configs = _expanded(base, variants)
    assert list(configs) == ["mlp random", "mlp split", "conv random", "conv split"]
    assert configs["conv split"].widths == (16, 16) and configs["conv split"].insertion == "split"
    assert configs["mlp random"].widths == (32, 32) and configs["mlp random"].schedule == "grow"
    with pytest.raises(family.PlasticityFamilyError, match="insertions"):
        family.FAMILY.sweeps["insertion"](base, {"insertions": ["copy"]})


def test_continual_sweep_places_changes_before_each_task_switch():
    base = family.PlasticityConfig(widths=(20, 20), change_layers=(0, 1), units_per_change=2,
                                   task_sequence="permuted", n_tasks=4, task_switch_every=20)
    variants = family.FAMILY.sweeps["continual"](base, {"integration_times": [20, 5], "replacement_rate": 0.01})
    configs = _expanded(base, variants)
    assert list(configs) == ["static", "continual-backprop", "grow I=5", "grow I=20", "prune I=5", "prune I=20"]
    assert configs["grow I=5"].change_steps() == (16, 36, 56)  # 5 steps of training before steps 21, 41, 61
    assert configs["prune I=20"].change_steps() == (1, 21, 41)
    assert configs["grow I=5"].widths == (14, 14) and configs["prune I=5"].widths == (26, 26)
    assert {c.final_widths() for c in configs.values()} == {(20, 20)}
    assert [v.tags["integration_time"] for v in variants] == [None, None, 5, 20, 5, 20]
    with pytest.raises(family.PlasticityFamilyError, match="integration_times"):
        family.FAMILY.sweeps["continual"](base, {"integration_times": [21], "schedules": ["grow"]})
    with pytest.raises(family.PlasticityFamilyError, match="task_sequence"):
        family.FAMILY.sweeps["continual"](base.replace(task_sequence="none", n_tasks=1),
                                          {"integration_times": [5], "schedules": ["grow"]})


# ------------------------------------------------------ headline plug-ins
def _fake_sweep(values: dict, **coords) -> xr.Dataset:
    """A combined sweep export with given per-seed values (variant -> {measure: values})."""
    labels = list(values)
    measures = sorted({m for v in values.values() for m in v})
    n_seeds = len(next(iter(next(iter(values.values())).values())))
    data = {m: (("variant", "seed"), np.array([values[label][m] for label in labels], dtype=float)) for m in measures}
    data["held_out_accuracy"] = (("variant", "seed", "eval_step"), np.full((len(labels), n_seeds, 3), 0.5))
    data["correct"] = (("variant", "seed", "stimulus_id", "step"), np.ones((len(labels), n_seeds, 3, 1), dtype=bool))
    return xr.Dataset(data, coords={"variant": labels, "seed": np.arange(n_seeds), "eval_step": [10, 20, 30],
                                    "stimulus_id": ["a", "b", "c"], "step": [1],
                                    **{name: ("variant", list(c)) for name, c in coords.items()}})


def test_grow_prune_pairs_schedules_seed_by_seed():
    from brainres.comparisons.plasticity_schedules import run

    seeds = np.arange(4)
    model = _fake_sweep({"g": {"final_accuracy": 0.9 + 0.01 * seeds, "trajectory_accuracy": [0.5] * 4,
                               "mean_parameters": [1.0] * 4},
                         "p": {"final_accuracy": [0.8] * 4, "trajectory_accuracy": [0.5] * 4,
                               "mean_parameters": [2.0] * 4},
                         "s": {"final_accuracy": 0.7 + 0.02 * seeds, "trajectory_accuracy": [0.5] * 4,
                               "mean_parameters": [1.5] * 4}},
                        arm=["grow", "prune", "static"], trunk=["mlp"] * 3)
    result = run(model, None)
    rows = {r.extra["label"]: r for r in result.results}
    assert rows["mlp: grow minus prune, final accuracy"].estimate == pytest.approx(0.115)
    # grow - static is 0.2 - 0.01 * seed: paired per seed, so the mean is 0.185 and the interval is tight
    paired_result = rows["mlp: grow minus static, final accuracy"]
    assert paired_result.estimate == pytest.approx(0.185) and paired_result.ci_high - paired_result.ci_low < 0.05
    assert rows["mlp: prune minus static, trajectory accuracy"].estimate == pytest.approx(0.0)
    assert all("p_adjusted" in r.extra for r in result.results if "minus" in r.extra["label"])
    assert rows["mlp, grow: final accuracy"].interval == "t" and list(result.figures) == ["trajectory-mlp"]


def test_insertion_gradient_reads_ratios_at_insertion_early_and_late():
    from brainres.comparisons.plasticity_insertion import per_seed_ratios

    trajectory = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, np.nan], [0.2, 0.2, 0.2, 0.6, 0.6, np.nan]])
    ratios = per_seed_ratios(trajectory, early_steps=2, late_steps=2)
    np.testing.assert_allclose(ratios["at_insertion"], [0.1, 0.2])
    np.testing.assert_allclose(ratios["early"], [0.15, 0.2])
    np.testing.assert_allclose(ratios["late"], [0.45, 0.6])  # the last two *recorded* steps


TINY = {"widths": [6, 6], "epochs": 2, "batch_size": 128, "ratio_window": 8, "eval_every": 4, "track_every": 11,
        "retrain": False}


def test_headline_plugins_on_a_tiny_pipeline(tmp_path):
    from brainres.pipeline.config import parse_pipeline
    from brainres.pipeline.run import run_pipeline
    from brainres.pipeline.store import load_result

    mapping = {"run": {"name": "tiny-plasticity"}, "model": [
        {"name": "insertion", "family": "plasticity", "seeds": [0, 1],
         "plasticity": {**TINY, "n_changes": 1, "units_per_change": 2, "first_change_step": 6},
         "sweep": {"kind": "insertion", "trunks": ["mlp", "conv"], "widths": {"conv": [4, 4]}}},
        {"name": "schedules", "family": "plasticity", "seeds": [0, 1],
         "plasticity": {**TINY, "n_changes": 2, "units_per_change": 1, "first_change_step": 5, "change_interval": 5},
         "sweep": {"kind": "schedules"}},
        {"name": "continual", "family": "plasticity", "seeds": [0, 1],
         "plasticity": {**TINY, "epochs": 3, "task_sequence": "permuted", "n_tasks": 3, "task_switch_every": 10,
                        "units_per_change": 1, "maturity_threshold": 5},
         "sweep": {"kind": "continual", "integration_times": [2, 10], "schedules": ["continual-backprop", "grow"],
                   "replacement_rate": 0.05}},
    ], "comparison": [{"kind": "insertion-gradient", "model": "insertion", "options": {"early_steps": 2,
                                                                                        "late_steps": 3}},
                      {"kind": "grow-prune", "model": "schedules"},
                      {"kind": "grow-prune-continual", "model": "continual"}]}
    report = run_pipeline(parse_pipeline(mapping), tmp_path, executor="in-process", progress=False, quiet=True)
    assert report.exists()
    results = {r.comparison: r for r in (load_result(p) for p in sorted((tmp_path / "results").iterdir()))}
    assert set(results) == {"insertion-gradient", "grow-prune", "grow-prune-continual"}
    for result in results.values():
        assert result.figures and result.methods
        summaries = [r for r in result.results if r.interval == "t"]
        assert summaries and all(np.isfinite(r.ci_low) and r.ci_low <= r.estimate <= r.ci_high for r in summaries
                                 if r.extra.get("sd", 1) > 0)
        assert all(r.extra.get("label") and r.extra.get("n_unit") == "seeds" for r in result.results)
    labels = [r.extra["label"] for r in results["insertion-gradient"].results]
    assert "random insertion: gap at insertion (1 - ratio), conv minus mlp" in labels
    assert "mlp: grow minus prune, final accuracy" in [r.extra["label"] for r in results["grow-prune"].results]
    continual = [r.extra["label"] for r in results["grow-prune-continual"].results]
    assert "I = 10: grow minus continual-backprop, trajectory accuracy" in continual
    assert any(label.startswith("integration effect: grow at I = 10 minus I = 2") for label in continual)
    assert set(results["grow-prune-continual"].figures) == {"integration", "trajectory"}


# ------------------------------------------------------ headline (slow)
@pytest.mark.slow
def test_headline_newborns_get_less_gradient_and_recover(digits):
    from brainres.comparisons.plasticity_insertion import per_seed_ratios

    config = family.PlasticityConfig(widths=(32, 32), schedule="grow", change_layers=(0,), n_changes=1,
                                     units_per_change=8, first_change_step=150, ratio_window=250, retrain=False)
    ds = family.measure(config, [family.train(config, seed, stimuli=digits) for seed in range(5)])
    ratios = per_seed_ratios(ds["gradient_ratio"].mean(["insertion_event", "hidden_layer"]).values,
                             early_steps=5, late_steps=50)
    assert brainres.stats.seed_summary(ratios["at_insertion"]).ci_high < 1
    assert (ratios["late"] > ratios["at_insertion"]).mean() >= 0.8
