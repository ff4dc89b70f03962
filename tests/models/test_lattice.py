import math

import pytest
import torch
import torch.nn.functional as F

from brainres.families.lattice import (
    FAMILY,
    FixedStepRecurrentNet,
    LatticeConfig,
    LatticeNet,
    geometric_prior,
    halting_distribution,
)
from brainres.models.contract import ContractError, resource_summary, run_model, task_loss
from brainres.settings import SettingsError
from brainres.train import TrainConfig

SMALL = LatticeConfig(max_channels=6, max_layers=2, max_steps=4)
LABELS = torch.tensor([0, 1, 2, 3, 4])


def _images(batch=5, seed=0):
    return torch.rand(batch, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_config_hash_is_stable_and_sensitive():
    assert SMALL.config_hash() == LatticeConfig(max_channels=6, max_layers=2, max_steps=4).config_hash()
    assert SMALL.config_hash() != LatticeConfig(max_channels=6, max_layers=2, max_steps=4, lambda_time=0.1).config_hash()
    assert LatticeConfig.from_dict(SMALL.to_dict()) == SMALL


@pytest.mark.parametrize(
    "field, value, words",
    [("max_steps", 0, "max_steps"), ("kernel_size", 4, "kernel_size"), ("lambda_time", -1.0, "lambda_time"),
     ("halting_prior", 1.0, "halting_prior"), ("unrolling", "diagonal", "unrolling"), ("n_classes", 1, "n_classes"),
     ("readout", "top", "readout"), ("lambda_time", float("nan"), "lambda_time"), ("top_down", 1, "top_down"),
     ("max_layers", 2.0, "max_layers")],
)
def test_config_rejects_bad_values(field, value, words):
    with pytest.raises(SettingsError, match=words):
        LatticeConfig(**{field: value})


def test_config_lists_every_bad_value_at_once():
    with pytest.raises(SettingsError) as caught:
        LatticeConfig(max_steps=0, lambda_time=-1.0, readout="top")
    assert len(caught.value.problems) == 3
    assert "3 problems" in str(caught.value)
    for name in ("max_steps", "lambda_time", "readout"):
        assert name in str(caught.value)


def test_from_dict_names_unknown_keys():
    with pytest.raises(SettingsError, match="unknown key 'max_width'"):
        LatticeConfig.from_dict({**SMALL.to_dict(), "max_width": 3})
    with pytest.raises(SettingsError, match=r"unknown key 'max_step' \(did you mean 'max_steps'\?\)"):
        LatticeConfig.from_dict({**SMALL.to_dict(), "max_step": 3})


def test_step_loss_weight_moved_to_the_training_config():
    with pytest.raises(SettingsError, match="unknown key 'step_loss_weight'"):
        LatticeConfig.from_dict({**SMALL.to_dict(), "step_loss_weight": 0.5})
    assert TrainConfig(step_loss_weight=0.25).step_loss_weight == 0.25


def test_family_builds_the_same_net_from_its_record():
    settings, location = FAMILY.settings({"max_channels": 6, "max_layers": 2, "max_steps": 4}, in_channels=1,
                                         n_classes=10)
    assert settings == SMALL.to_dict() and location == {}
    record = {"family": "lattice", "settings": settings}
    built = FAMILY.build(record, seed=3, location={})
    for (name, value), expected in zip(built.state_dict().items(), LatticeNet(SMALL, seed=3).state_dict().values()):
        assert torch.equal(value, expected), name
    assert FAMILY.pressures(record) == {"lambda_breadth": 0.0, "lambda_depth": 0.0, "lambda_time": 0.0}
    with pytest.raises(SettingsError, match="n_classes"):
        FAMILY.settings({"n_classes": 3}, in_channels=1, n_classes=10)


def test_halting_distribution_sums_to_one_and_matches_definition():
    lam = torch.tensor([[0.2, 0.5, 0.1, 0.3]])
    p = halting_distribution(lam)[0]
    expected = [0.2, 0.8 * 0.5, 0.8 * 0.5 * 0.1, 0.8 * 0.5 * 0.9]
    assert torch.allclose(p, torch.tensor(expected))
    assert math.isclose(float(p.sum()), 1.0, rel_tol=1e-6)


def test_geometric_prior_is_normalised_and_decreasing():
    prior = geometric_prior(5, 0.3)
    assert math.isclose(float(prior.sum()), 1.0, rel_tol=1e-6)
    assert (prior[1:] < prior[:-1]).all()


def test_same_seed_same_weights_different_seed_different():
    a, b, c = LatticeNet(SMALL, seed=3), LatticeNet(SMALL, seed=3), LatticeNet(SMALL, seed=4)
    for (name, wa), wb, wc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(wa, wb), name
    assert not torch.equal(a.stem.weight, c.stem.weight)


def test_seeded_init_leaves_global_rng_alone():
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    LatticeNet(SMALL, seed=0)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("halting", ["confidence", "features"])
def test_forward_shapes_and_probabilities(halting):
    model = LatticeNet(LatticeConfig(**{**SMALL.to_dict(), "halting": halting}), seed=0)
    out = model(_images())
    assert out["logits"].shape == (5, 4, 10)
    assert out["halting_probability"].shape == (5, 4)
    assert out["halting_lambda"].shape == (5, 4)
    assert torch.allclose(out["halting_probability"].sum(dim=1), torch.ones(5))
    assert torch.allclose(out["halting_probability"], halting_distribution(out["halting_lambda"]))
    steps = torch.arange(1, 5, dtype=torch.float32)
    assert torch.allclose(out["expected_steps"], (out["halting_probability"] * steps).sum(dim=1))
    # latents are the layers' spatial maps at every step, not pooled
    assert list(out["latents"]) == ["layer_0", "layer_1"]
    assert [latent.shape for latent in out["latents"].values()] == [(5, 4, 6, 8, 8), (5, 4, 6, 8, 8)]
    assert out["cost"].shape == ()


@pytest.mark.parametrize("bad", [torch.rand(2, 3, 8, 8), torch.rand(8, 8), torch.zeros(2, 1, 8, 8, dtype=torch.uint8)])
def test_forward_rejects_bad_images(bad):
    with pytest.raises(ContractError, match="images"):
        LatticeNet(SMALL, seed=0)(bad)


def test_closed_depth_gate_makes_layer_the_identity():
    model = LatticeNet(SMALL, seed=0)
    layer = model.layers[1]
    with torch.no_grad():
        layer.depth_logit.fill_(-1e4)
    below, previous = torch.randn(2, 6, 8, 8), torch.randn(2, 6, 8, 8)
    assert torch.equal(layer(below, previous, None), below)


def test_dead_channel_adds_nothing():
    model = LatticeNet(SMALL, seed=0)
    layer = model.layers[0]
    with torch.no_grad():
        layer.channel_gate[2] = 0.0
    below, previous = torch.randn(2, 6, 8, 8), torch.randn(2, 6, 8, 8)
    out = layer(below, previous, None)
    assert torch.equal(out[:, 2], below[:, 2])
    assert not torch.equal(out[:, 1], below[:, 1])


def test_resource_summary_reads_gates():
    model = LatticeNet(SMALL, seed=0)
    with torch.no_grad():
        model.layers[0].channel_gate[4:] = 0.01  # below the 0.05 threshold
        model.layers[1].depth_logit.fill_(-5.0)  # closed
    summary = model.resource_summary()
    assert set(summary) == {"active_channels", "depth_gate", "effective_depth", "open_layers", "active_breadth",
                            "cost_breadth", "cost_depth"}
    assert summary["active_channels"] == [4, 6]
    assert summary["open_layers"] == 1
    assert summary["active_breadth"] == 4.0
    gates = [float(torch.sigmoid(torch.tensor(2.0))), float(torch.sigmoid(torch.tensor(-5.0)))]
    assert summary["depth_gate"] == pytest.approx(gates, rel=1e-6)
    assert math.isclose(summary["effective_depth"], sum(gates), rel_tol=1e-6)
    assert math.isclose(summary["cost_breadth"], float(model.breadth_cost().detach()), rel_tol=1e-6)
    assert math.isclose(summary["cost_depth"], float(model.depth_cost().detach()), rel_tol=1e-6)
    # and it passes the contract's check (numbers or lists of numbers)
    assert resource_summary(model)["active_channels"] == [4.0, 6.0]


def test_active_breadth_is_zero_when_every_layer_is_closed():
    model = LatticeNet(SMALL, seed=0)
    with torch.no_grad():
        for layer in model.layers:
            layer.depth_logit.fill_(-5.0)
    summary = model.resource_summary()
    assert summary["open_layers"] == 0 and summary["active_breadth"] == 0.0


def test_breadth_cost_charges_later_channels_more():
    model = LatticeNet(SMALL, seed=0)
    with torch.no_grad():
        model.layers[0].channel_gate.zero_()
        model.layers[1].channel_gate.zero_()
        model.layers[0].channel_gate[0] = 1.0
    first = float(model.breadth_cost().detach())
    with torch.no_grad():
        model.layers[0].channel_gate[0] = 0.0
        model.layers[0].channel_gate[5] = 1.0
    assert float(model.breadth_cost().detach()) > first > 0


def test_task_loss_is_halting_weighted_cross_entropy_plus_every_step_term():
    model = LatticeNet(SMALL, seed=0)
    out = run_model(model, _images(), n_classes=10)
    per_step = torch.stack([F.cross_entropy(out.logits[:, n], LABELS, reduction="none") for n in range(4)], dim=1)
    weighted = (out.halting_probability * per_step).sum(dim=1).mean()
    for weight in (0.0, 0.5, 2.0):
        torch.testing.assert_close(task_loss(out, LABELS, step_loss_weight=weight), weighted + weight * per_step.mean())


def test_cost_terms_and_pressures_enter_the_total():
    free = LatticeNet(SMALL, seed=0)
    pressured_config = LatticeConfig(**{**SMALL.to_dict(), "lambda_time": 0.5, "lambda_depth": 0.25,
                                        "lambda_breadth": 2.0})
    pressured = LatticeNet(pressured_config, seed=0)
    images = _images()
    base, more = free(images), pressured(images)
    terms = pressured.cost_terms(more["halting_probability"], more["expected_steps"])
    assert set(terms) == {"kl", "time", "breadth", "depth"}
    assert all(value.shape == () for value in terms.values())
    # The KL term enters with beta_kl; the pressures add their weighted terms on top of it.
    torch.testing.assert_close(base["cost"], SMALL.beta_kl * terms["kl"])
    extra = 0.5 * terms["time"] + 0.25 * terms["depth"] + 2.0 * terms["breadth"]
    torch.testing.assert_close(more["cost"], base["cost"] + extra)
    torch.testing.assert_close(terms["time"], more["expected_steps"].mean())
    torch.testing.assert_close(terms["breadth"], pressured.breadth_cost())
    torch.testing.assert_close(terms["depth"], pressured.depth_cost())
    # The pressures change nothing but the cost: same logits, same task loss.
    free_total = task_loss(run_model(free, images), LABELS, step_loss_weight=0.5) + base["cost"]
    pressured_task = task_loss(run_model(pressured, images), LABELS, step_loss_weight=0.5)
    torch.testing.assert_close(pressured_task + more["cost"], free_total + extra)
    # run_model hands the cost on as the scalar the trainer adds
    torch.testing.assert_close(run_model(pressured, images).cost, more["cost"])


def test_kl_term_is_zero_at_the_prior_and_positive_elsewhere():
    model = LatticeNet(SMALL, seed=0)
    prior = geometric_prior(4, SMALL.halting_prior).expand(3, 4)
    steps = torch.arange(1, 5, dtype=torch.float32)
    at_prior = model.cost_terms(prior, (prior * steps).sum(dim=1))
    assert abs(float(at_prior["kl"])) < 1e-6
    late = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    assert float(model.cost_terms(late, torch.tensor([4.0]))["kl"]) > 0.1


def test_gradients_reach_every_gate():
    model = LatticeNet(LatticeConfig(**{**SMALL.to_dict(), "lambda_breadth": 0.1, "lambda_depth": 0.1}), seed=0)
    out = run_model(model, _images(), n_classes=10)
    (task_loss(out, LABELS, step_loss_weight=0.5) + out.cost).backward()
    for layer in model.layers:
        assert layer.channel_gate.grad.abs().sum() > 0
        assert layer.depth_logit.grad.abs() > 0
    assert model.halting_slope_raw.grad.abs() > 0
    assert model.halting_step_bias.grad.abs().sum() > 0


def test_biological_unrolling_first_step_sees_only_the_first_layer():
    # At step 1 the second layer has not yet heard from the first; its state
    # cannot depend on the image, so two images differ only through layer 0.
    model = LatticeNet(SMALL, seed=0)
    latents = model(_images(2))["latents"]
    assert torch.allclose(latents["layer_1"][0, 0], latents["layer_1"][1, 0])
    assert not torch.allclose(latents["layer_1"][0, 1], latents["layer_1"][1, 1])
    sweep = LatticeNet(LatticeConfig(**{**SMALL.to_dict(), "unrolling": "sweep"}), seed=0)
    sweep_latents = sweep(_images(2))["latents"]
    assert not torch.allclose(sweep_latents["layer_1"][0, 0], sweep_latents["layer_1"][1, 0])


def test_center_readout_reads_the_top_layer_fovea_only():
    config = LatticeConfig(max_channels=3, max_layers=2, max_steps=2, readout="center")
    model = LatticeNet(config, seed=0)
    assert model.readout.in_features == config.max_channels
    lower = torch.randn(2, 3, 6, 6)
    top = torch.randn(2, 3, 6, 6)
    # Even size: the central 2 x 2 pixels, averaged.
    torch.testing.assert_close(model._pool([lower, top]), top[..., 2:4, 2:4].mean(dim=(-2, -1)))
    odd = torch.randn(2, 3, 7, 7)
    torch.testing.assert_close(model._pool([lower, odd]), odd[..., 3, 3])
    # Changing anything but the top layer's fovea changes nothing.
    moved = top.clone()
    moved[..., 0, :] += 5.0
    torch.testing.assert_close(model._pool([lower + 1.0, moved]), model._pool([lower, top]))


def test_top_down_changes_lower_layer_from_step_two():
    config = LatticeConfig(**{**SMALL.to_dict(), "top_down": True})
    model = LatticeNet(config, seed=0)
    images = _images(2)
    before = model(images)["latents"]["layer_0"]
    with torch.no_grad():
        model.layers[0].top_down.weight.zero_()
    after = model(images)["latents"]["layer_0"]
    assert torch.equal(before[:, 0], after[:, 0])
    assert not torch.allclose(before[:, 2], after[:, 2])


def test_contract_output_has_everything_an_export_needs():
    model = LatticeNet(SMALL, seed=0)
    images = _images()
    with torch.no_grad():
        raw = model(images)
        out = run_model(model, images, n_classes=10, latents=True)
    assert out.n_steps == 4 and out.n_classes == 10
    assert torch.equal(out.logits, raw["logits"])
    assert torch.equal(out.halting_probability, raw["halting_probability"])
    # the contract pools the lattice's spatial maps to (batch, step, channel)
    assert set(out.latents) == {"layer_0", "layer_1"}
    for name in ("layer_0", "layer_1"):
        assert out.latents[name].shape == (5, 4, 6)
        torch.testing.assert_close(out.latents[name], raw["latents"][name].mean(dim=(3, 4)))
    assert run_model(model, images).latents == {}  # latents only when asked for
    assert model.training  # running it through the contract leaves the mode alone


@pytest.mark.parametrize("halting_mass", [0.5, 0.9])
def test_early_exit_matches_full_run_at_the_halting_step(halting_mass, monkeypatch):
    model = LatticeNet(LatticeConfig(max_channels=6, max_layers=2, max_steps=6), seed=1).eval()
    generator = torch.Generator().manual_seed(2)
    images = torch.rand(32, 1, 8, 8, generator=generator) * torch.rand(32, 1, 1, 1, generator=generator)
    # Replace the learned halting by one that depends steeply on how active
    # each stimulus's states are, so stimuli halt at many different steps; the
    # check is of the early-exit bookkeeping, not of the halting head.
    original_read = model._read
    with torch.no_grad():
        latents = model(images)["latents"]
    centre = float(torch.stack(list(latents.values())).mean(dim=(0, 3, 4, 5)).median())

    def active_states_halt_first(pooled, step_index):
        logits, _ = original_read(pooled, step_index)
        step = torch.as_tensor(step_index, dtype=pooled.dtype)
        return logits, torch.sigmoid(400 * (pooled.mean(dim=-1) - centre) + 2 * step - 5)

    monkeypatch.setattr(model, "_read", active_states_halt_first)
    with torch.no_grad():
        full = model(images)
    reached = full["halting_probability"].cumsum(dim=1) >= halting_mass - 1e-6
    reached[:, -1] = True
    expected_step = reached.float().argmax(dim=1) + 1
    exited = model.early_exit(images, halting_mass=halting_mass)
    assert len(set(expected_step.tolist())) >= 3  # the check covers several halting steps
    assert torch.equal(exited["halting_step"], expected_step)
    picked = full["logits"][torch.arange(32), expected_step - 1]
    assert torch.allclose(exited["logits"], picked, atol=1e-5)


def test_early_exit_rejects_a_bad_halting_mass():
    with pytest.raises(ContractError, match="halting_mass"):
        LatticeNet(SMALL, seed=0).early_exit(_images(), halting_mass=0.0)


def test_fixed_step_net_is_the_same_size_without_gates():
    config = LatticeConfig(max_channels=6, max_layers=2, max_steps=3)
    lattice, plain = LatticeNet(config, seed=0), FixedStepRecurrentNet(config, seed=0)
    conv = lambda net: sum(p.numel() for n, p in net.named_parameters() if "weight" in n and p.ndim == 4)  # noqa: E731
    assert conv(lattice) == conv(plain)
    raw = plain(_images())
    assert set(raw) == {"logits"} and raw["logits"].shape == (5, 1, 10)
    out = run_model(plain, _images(), n_classes=10)
    assert out.halting_probability is None and out.cost is None
    loss = task_loss(out, LABELS, step_loss_weight=0.5)
    torch.testing.assert_close(loss, F.cross_entropy(raw["logits"][:, 0], LABELS))
    assert loss > 0
    assert not hasattr(plain, "loss")


def test_confidence_halting_stops_sooner_when_the_readout_is_surer():
    model = LatticeNet(SMALL, seed=0)
    steps = torch.zeros(2, dtype=torch.long)
    pooled = torch.randn(2, model.readout.in_features, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.readout.weight.zero_()
        model.readout.bias.zero_()
        model.readout.weight[0, :] = torch.tensor([0.0, 1.0]).repeat_interleave(model.readout.in_features // 2)
        pooled[0, model.readout.in_features // 2:] = 10.0  # stimulus 0: large evidence for class 0
        pooled[1, :] = 0.0  # stimulus 1: uniform readout
        _, halting_lambda = model._read(pooled, steps)
    assert halting_lambda[0] > halting_lambda[1]
