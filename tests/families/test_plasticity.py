"""Tests of the grow / prune plasticity family.

Each mechanism test compares against a hand-built reference or a property
that would break if the mechanism were removed (zero outgoing weights,
Net2Net function preservation, exact pruning, GradMax optimality, Adam state
surgery, continual-backprop replacement, unit bookkeeping).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import brainres
from brainres.data.io import read_netcdf, write_netcdf
from brainres.families import plasticity as family
from brainres.models import plasticity as plastic

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
        model = plastic.PlasticMLP(n_inputs=64, widths=widths, n_classes=10, activation=activation)
    else:
        model = plastic.PlasticConvNet(in_channels=1, widths=widths, n_classes=10, activation=activation)
    return model.to(dtype)


def _batch(n=24, seed=1, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 8, 8, generator=generator, dtype=dtype)
    labels = torch.randint(0, 10, (n,), generator=generator)
    return images, labels


def _gradient_norms(model, layer, images, labels):
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(images), labels).backward()
    return plastic.incoming_gradient_norms(model, layer)


def _tiny_config(**overrides):
    values = dict(trunk="mlp", widths=(8, 8), epochs=2, batch_size=64, first_change_step=5, change_interval=5,
                  n_changes=2, units_per_change=2, ratio_window=6, eval_every=5, track_every=5, retrain=False)
    values.update(overrides)
    return family.Config(**values)


# ------------------------------------------------------------- insertion
@pytest.mark.parametrize("trunk", TRUNKS)
@pytest.mark.parametrize("layer", [0, 1])
def test_zero_outgoing_insertion_gets_exactly_zero_incoming_gradient(trunk, layer):
    images, labels = _batch()
    model = _model(trunk)
    before = model(images).detach()
    plastic.insert_units(model, layer, 3, method="zero", generator=torch.Generator().manual_seed(2))
    assert torch.equal(model.outgoing(layer).weight[:, -3:], torch.zeros_like(model.outgoing(layer).weight[:, -3:]))
    torch.testing.assert_close(model(images), before, rtol=0, atol=1e-12)
    norms = _gradient_norms(model, layer, images, labels)
    assert torch.all(norms[-3:] == 0)
    assert torch.all(norms[:-3] > 0)
    # Control: the same insertion with random outgoing weights does receive a gradient.
    random = _model(trunk)
    plastic.insert_units(random, layer, 3, method="random", generator=torch.Generator().manual_seed(2))
    assert torch.all(_gradient_norms(random, layer, images, labels)[-3:] > 0)


def test_random_insertion_follows_default_init_bounds():
    model = _model("mlp", widths=(10, 4))
    plastic.insert_units(model, 0, 6, method="random", generator=torch.Generator().manual_seed(0))
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
    plastic.insert_units(model, layer, 2, method="split", generator=torch.Generator().manual_seed(3),
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
    with pytest.raises(plastic.PlasticityError, match="distinct"):
        plastic.insert_units(model, 0, 2, method="split", generator=torch.Generator(), split_from=[1, 1])
    with pytest.raises(plastic.PlasticityError, match="0..5"):
        plastic.insert_units(model, 0, 1, method="split", generator=torch.Generator(), split_from=[6])


@pytest.mark.parametrize("trunk", TRUNKS)
def test_gradmax_preserves_function_and_maximises_newborn_gradient(trunk):
    images, labels = _batch(n=32)
    layer = 0
    model = _model(trunk)
    before = model(images).detach()
    plastic.insert_units(model, layer, 1, method="gradmax", generator=torch.Generator().manual_seed(0),
                         gradmax_batch=(images, labels), gradmax_scale=1.0)
    torch.testing.assert_close(model(images), before, rtol=0, atol=1e-12)
    assert torch.all(model.hidden[layer].weight[-1] == 0)
    best = float(_gradient_norms(model, layer, images, labels)[-1])
    assert best > 0
    # Any other unit-norm outgoing vector gives a smaller incoming gradient.
    generator = torch.Generator().manual_seed(5)
    for _ in range(20):
        other = _model(trunk)
        plastic.insert_units(other, layer, 1, method="zero", generator=torch.Generator().manual_seed(0))
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
    with pytest.raises(plastic.PlasticityError, match="relu"):
        plastic.insert_units(model, 0, 1, method="gradmax", generator=torch.Generator(), gradmax_batch=(images, labels))


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
    plastic.remove_units(model, layer, chosen)
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
    chosen = plastic.lowest_units(plastic.magnitude_scores(model, 0), 2)
    assert chosen.tolist() == [2, 4]


def test_remove_units_validates():
    model = _model("mlp")
    with pytest.raises(plastic.PlasticityError, match="all 6 units"):
        plastic.remove_units(model, 0, range(6))
    with pytest.raises(plastic.PlasticityError, match="layer"):
        plastic.remove_units(model, 5, [0])


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
    old = plastic.adam_state_by_name(model, optimizer)
    old_in = {k: v.clone() for k, v in old["hidden.0.weight"].items()}
    old_out = {k: v.clone() for k, v in old["hidden.1.weight"].items()}
    # Two consecutive changes touch hidden.1.weight twice: columns (layer 0) then rows (layer 1).
    maps = plastic.merge_index_maps(
        plastic.insert_units(model, 0, 2, method="random", generator=torch.Generator().manual_seed(0)),
        plastic.remove_units(model, 1, [1]),
    )
    fresh = torch.optim.Adam(model.parameters(), lr=1e-2)
    plastic.transplant_adam_state(old, model, fresh, maps, mode="keep")
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
    old = plastic.adam_state_by_name(model, optimizer)
    maps = plastic.insert_units(model, 0, 2, method="random", generator=torch.Generator())
    fresh = torch.optim.Adam(model.parameters(), lr=1e-2)
    plastic.transplant_adam_state(old, model, fresh, maps, mode="reset")
    assert len(fresh.state) == 0
    with pytest.raises(plastic.PlasticityError, match="optimizer_state"):
        plastic.transplant_adam_state(old, model, fresh, maps, mode="zero")


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
    old = plastic.adam_state_by_name(model, optimizer)
    maps = plastic.reinitialize_units(model, 0, [2, 5], generator=torch.Generator().manual_seed(0))
    plastic.transplant_adam_state(old, model, optimizer, maps, mode="keep")
    torch.testing.assert_close(model(images), before, rtol=0, atol=1e-12)
    assert torch.all(model.outgoing(0).weight[:, [2, 5]] == 0)
    assert not torch.equal(model.hidden[0].weight[[2, 5]], old_in[[2, 5]])
    assert torch.equal(model.hidden[0].weight[[0, 1, 3, 4]], old_in[[0, 1, 3, 4]])
    state = optimizer.state[model.hidden[0].weight]
    assert torch.all(state["exp_avg"][[2, 5]] == 0) and torch.any(state["exp_avg"][[0, 1]] != 0)


def test_continual_backprop_replaces_low_utility_units_during_training(digits):
    config = _tiny_config(schedule="none", n_changes=0, units_per_change=0, replacement_rate=0.05,
                          maturity_threshold=5, epochs=2)
    run = family.train(config, 0, stimuli=digits)
    lifetimes = run["unit_lifetimes"]
    replaced = lifetimes[lifetimes["removal_step"].notna()]
    assert len(replaced) > 0
    assert (replaced["removal_step"] - replaced["birth_step"] > config.maturity_threshold).all()
    assert (lifetimes["birth_step"] > 0).sum() == len(replaced)  # one newborn per replaced unit
    assert run["final_widths"] == (8, 8)
    off = family.train(dataclasses.replace(config, replacement_rate=0.0), 0, stimuli=digits)
    assert off["unit_lifetimes"]["removal_step"].isna().all()


# ------------------------------------------------------------ training
def test_training_tracks_units_and_gradient_ratio(digits):
    config = _tiny_config(schedule="grow", insertion="zero", change_layers=(0, 1))
    run = family.train(config, 0, stimuli=digits)
    assert run["final_widths"] == (12, 12)
    lifetimes = run["unit_lifetimes"]
    assert sorted(lifetimes.loc[lifetimes["birth_step"] > 0, "birth_step"].unique()) == [5, 10]
    ratio = run["gradient_ratio"]
    # Zero outgoing weights: exactly no incoming gradient at insertion, then some.
    assert (ratio.loc[ratio["steps_since_insertion"] == 0, "gradient_ratio"] == 0).all()
    assert (ratio.loc[ratio["steps_since_insertion"] == 1, "gradient_ratio"] > 0).all()
    assert set(ratio["insertion"]) == {0, 1} and set(ratio["layer"]) == {0, 1}
    units = run["units"]
    counts = units.groupby(["step", "layer"]).size()
    assert counts.loc[(5, 0)] == 10 and counts.loc[(15, 1)] == 12  # tracked after each change
    assert run["mean_parameters"] > family.build_model(config, (1, 8, 8), 10).n_parameters()


def test_pruning_schedule_removes_the_lowest_units(digits):
    config = _tiny_config(schedule="prune", removal="utility", widths=(10, 8))
    run = family.train(config, 0, stimuli=digits)
    assert run["final_widths"] == (6, 8)
    lifetimes = run["unit_lifetimes"]
    assert sorted(lifetimes["removal_step"].dropna().tolist()) == [5, 5, 10, 10]


def test_same_seed_same_numbers_and_seeds_differ(digits):
    config = _tiny_config(insertion="split")
    first = family.train(config, 3, stimuli=digits)
    second = family.train(config, 3, stimuli=digits)
    other = family.train(config, 4, stimuli=digits)
    assert first["log"].equals(second["log"])
    assert first["step_log"].equals(second["step_log"])
    assert list(first["log"]["epoch"]) == [1, 2] and first["log"]["step"].iloc[-1] == len(first["step_log"])
    assert first["gradient_ratio"].equals(second["gradient_ratio"])
    assert np.array_equal(first["held_out_predicted"], second["held_out_predicted"])
    for a, b in zip(first["model"].parameters(), second["model"].parameters()):
        assert torch.equal(a, b)
    assert not first["step_log"].equals(other["step_log"])


def test_retraining_equals_a_static_run_of_the_final_widths(digits):
    config = _tiny_config(retrain=True)
    run = family.train(config, 1, stimuli=digits)
    static = family.train(dataclasses.replace(config, widths=config.final_widths(), schedule="none",
                                              retrain=False), 1, stimuli=digits)
    assert run["retrained_accuracy"] == static["final_accuracy"]
    assert np.array_equal(run["retrained_correct"], static["held_out_correct"])


def test_held_out_split_is_deterministic_and_disjoint(digits):
    data = family.split_stimuli(digits, held_out_fraction=0.25, split_seed=0)
    again = family.split_stimuli(digits, held_out_fraction=0.25, split_seed=0)
    assert np.array_equal(data.held_out_ids, again.held_out_ids)
    assert len(data.held_out_ids) == 449 and data.train_labels.numel() == 1797 - 449
    other = family.split_stimuli(digits, held_out_fraction=0.25, split_seed=1)
    assert not np.array_equal(data.held_out_ids, other.held_out_ids)


# ---------------------------------------------------------------- export
def test_measure_validates_and_round_trips(digits, tmp_path):
    config = _tiny_config(trunk="conv", insertion="zero", retrain=True, replacement_rate=0.05, maturity_threshold=5)
    ds = family.measure(config, [0, 1], stimuli=digits)
    brainres.validate(ds, "model_measures")
    assert ds.attrs["model_family"] == "plasticity"
    assert ds.attrs["config_hash"] == config.config_hash()
    assert ds.attrs["pressures"]["insertion"] == "zero"
    assert ds["correct"].dims == ("seed", "stimulus_id", "step")
    assert ds.sizes["stimulus_id"] == 449 and ds["stimulus_id"].values[0].startswith("digits-")
    assert (ds["gradient_ratio"].sel(steps_since_insertion=0, hidden_layer=0) == 0).all()
    np.testing.assert_allclose(ds["final_accuracy"], ds["correct"].mean(("stimulus_id", "step")))
    np.testing.assert_allclose(ds["retrained_accuracy"], ds["retrained_correct"].mean("stimulus_id"))
    assert set(ds["unit_layer"].values.tolist()) == {0, 1}
    path = tmp_path / "plasticity.nc"
    write_netcdf(ds, path, validate_kind="model_measures")
    back = read_netcdf(path)
    np.testing.assert_array_equal(back["correct"].values, ds["correct"].values)
    np.testing.assert_array_equal(back["unit_birth_step"].values, ds["unit_birth_step"].values)


def test_measure_rejects_runs_of_another_config(digits):
    config = _tiny_config(epochs=1)
    run = family.train(config, 0, stimuli=digits)
    with pytest.raises(family.PlasticityConfigError, match="does not match"):
        family.measure(config, [1], trained=[run])


@pytest.mark.needs_data
def test_mnist_test_set_trains_and_exports(data_root):
    stimuli = brainres.load_stimuli("mnist-test")
    config = family.Config(task="mnist-test", epochs=1, first_change_step=30, ratio_window=20, eval_every=50,
                           retrain=False)
    ds = family.measure(config, [0], stimuli=stimuli)
    assert ds.sizes["stimulus_id"] == 2500
    assert float(ds["final_accuracy"].item()) > 0.5  # ten classes: chance is 0.1
    assert np.isfinite(ds["gradient_ratio"].sel(hidden_layer=0).values).all()


# ---------------------------------------------------------------- config
def test_config_hash_is_canonical_and_sensitive():
    config = family.Config()
    assert config.config_hash() == family.Config.from_dict(config.to_dict()).config_hash()
    assert config.config_hash() != family.Config(insertion="split").config_hash()
    assert family.Config(widths=[32, 32]) == config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"trunk": "rnn"}, "trunk"),
        ({"insertion": "copy"}, "insertion"),
        ({"change_layers": (2,)}, "change_layers"),
        ({"schedule": "prune", "widths": (8, 8), "n_changes": 2, "units_per_change": 4}, "leaves 0"),
        ({"insertion": "gradmax", "activation": "relu"}, "gradmax"),
        ({"held_out_fraction": 1.0}, "held_out_fraction"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(family.PlasticityConfigError, match=message):
        family.Config(**overrides)


def test_summary_interval_brackets_the_mean():
    import pandas as pd

    table = pd.DataFrame({"group": ["a"] * 6, "value": [0.1, 0.3, 0.2, 0.4, 0.25, 0.35]})
    summary = family.summarise_over_seeds(table, by="group", values=["value"], n_resamples=2000, seed=0)
    row = summary.iloc[0]
    assert row["ci_low"] < row["mean"] < row["ci_high"]
    assert row["mean"] == pytest.approx(table["value"].mean())
    again = family.summarise_over_seeds(table, by="group", values=["value"], n_resamples=2000, seed=0)
    assert again.equals(summary)


def test_schedule_differences_pair_by_trunk_and_seed():
    import pandas as pd

    rows = []
    for seed in range(4):
        for schedule, final in (("grow", 0.9 + 0.01 * seed), ("prune", 0.8), ("static", 0.7 + 0.02 * seed)):
            rows.append({"trunk": "mlp", "schedule": schedule, "seed": seed, "final_accuracy": final,
                         "trajectory_accuracy": 0.5})
    summary = family.schedule_differences(pd.DataFrame(rows), n_resamples=500).set_index(["schedule", "measure"])
    assert summary.loc[("grow - prune", "final_accuracy"), "mean"] == pytest.approx(0.115)
    # grow - static is 0.2 - 0.01 * seed: paired per seed, so the mean is 0.185
    assert summary.loc[("grow - static", "final_accuracy"), "mean"] == pytest.approx(0.185)
    assert summary.loc[("prune - static", "trajectory_accuracy"), "mean"] == pytest.approx(0.0)


# ------------------------------------------------------ headline (slow)
@pytest.mark.slow
def test_headline_newborns_get_less_gradient_and_recover(digits):
    per_seed, _, summary = family.insertion_gradient_ratio(trunks=("mlp",), seeds=range(5), stimuli=digits,
                                                           n_resamples=2000)
    rows = summary.set_index("measure")
    assert rows.loc["ratio_at_insertion", "ci_high"] < 1
    assert (per_seed["ratio_late"] > per_seed["ratio_at_insertion"]).mean() >= 0.8
