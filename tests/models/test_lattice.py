import math

import pytest
import torch

from brainres.models.lattice import (
    FixedStepRecurrentNet,
    LatticeConfig,
    LatticeConfigError,
    LatticeNet,
    geometric_prior,
    halting_distribution,
)

SMALL = LatticeConfig(max_channels=6, max_layers=2, max_steps=4)


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
     ("readout", "top", "readout")],
)
def test_config_rejects_bad_values(field, value, words):
    with pytest.raises(LatticeConfigError, match=words):
        LatticeConfig(**{field: value})


def test_from_dict_names_unknown_keys():
    with pytest.raises(LatticeConfigError, match="max_width"):
        LatticeConfig.from_dict({**SMALL.to_dict(), "max_width": 3})


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
    out = model(_images(), return_latents=True)
    assert out["logits"].shape == (5, 4, 10)
    assert out["halting_probability"].shape == (5, 4)
    assert torch.allclose(out["halting_probability"].sum(dim=1), torch.ones(5))
    steps = torch.arange(1, 5, dtype=torch.float32)
    assert torch.allclose(out["expected_steps"], (out["halting_probability"] * steps).sum(dim=1))
    assert [latent.shape for latent in out["latents"]] == [(5, 4, 6), (5, 4, 6)]


@pytest.mark.parametrize("bad", [torch.rand(2, 3, 8, 8), torch.rand(8, 8), torch.zeros(2, 1, 8, 8, dtype=torch.uint8)])
def test_forward_rejects_bad_images(bad):
    with pytest.raises(LatticeConfigError, match="images"):
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
    assert summary["active_channels"] == [4, 6]
    assert summary["open_layers"] == 1
    assert summary["active_breadth"] == 4.0
    expected_depth = float(torch.sigmoid(torch.tensor(2.0)) + torch.sigmoid(torch.tensor(-5.0)))
    assert math.isclose(summary["effective_depth"], expected_depth, rel_tol=1e-6)


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


def test_loss_terms_and_pressures_enter_total():
    labels = torch.tensor([0, 1, 2, 3, 4])
    free = LatticeNet(SMALL, seed=0)
    pressured_config = LatticeConfig(**{**SMALL.to_dict(), "lambda_time": 0.5, "lambda_depth": 0.25, "lambda_breadth": 2.0})
    pressured = LatticeNet(pressured_config, seed=0)
    images = _images()
    base = free.loss(free(images), labels)
    more = pressured.loss(pressured(images), labels)
    extra = 0.5 * more["time"] + 0.25 * more["depth"] + 2.0 * more["breadth"]
    assert torch.allclose(more["total"], base["total"] + extra)
    assert set(base) == {"total", "task", "every_step", "kl", "time", "breadth", "depth"}


def test_gradients_reach_every_gate():
    model = LatticeNet(LatticeConfig(**{**SMALL.to_dict(), "lambda_breadth": 0.1, "lambda_depth": 0.1}), seed=0)
    model.loss(model(_images()), torch.tensor([0, 1, 2, 3, 4]))["total"].backward()
    for layer in model.layers:
        assert layer.channel_gate.grad.abs().sum() > 0
        assert layer.depth_logit.grad.abs() > 0
    assert model.halting_slope_raw.grad.abs() > 0
    assert model.halting_step_bias.grad.abs().sum() > 0


def test_biological_unrolling_first_step_sees_only_the_first_layer():
    # At step 1 the second layer has not yet heard from the first; its state
    # cannot depend on the image, so two images differ only through layer 0.
    model = LatticeNet(SMALL, seed=0)
    latents = model(_images(2), return_latents=True)["latents"]
    assert torch.allclose(latents[1][0, 0], latents[1][1, 0])
    assert not torch.allclose(latents[1][0, 1], latents[1][1, 1])
    sweep = LatticeNet(LatticeConfig(**{**SMALL.to_dict(), "unrolling": "sweep"}), seed=0)
    sweep_latents = sweep(_images(2), return_latents=True)["latents"]
    assert not torch.allclose(sweep_latents[1][0, 0], sweep_latents[1][1, 0])


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
    before = model(images, return_latents=True)["latents"][0]
    with torch.no_grad():
        model.layers[0].top_down.weight.zero_()
    after = model(images, return_latents=True)["latents"][0]
    assert torch.equal(before[:, 0], after[:, 0])
    assert not torch.allclose(before[:, 2], after[:, 2])


def test_measure_has_everything_an_export_needs():
    model = LatticeNet(SMALL, seed=0)
    measured = model.measure(_images())
    assert measured["logits"].shape == (5, 4, 10)
    assert measured["halting_probability"].shape == (5, 4)
    assert set(measured["latents"]) == {"layer_0", "layer_1"}
    assert measured["latents"]["layer_0"].shape == (5, 4, 6)
    for key in ("active_channels", "effective_depth", "active_breadth", "breadth_cost", "depth_cost", "time_cost"):
        assert key in measured["model"]
    assert measured["model"]["pressures"] == {"lambda_breadth": 0.0, "lambda_depth": 0.0, "lambda_time": 0.0}
    assert model.training  # measure restores the mode it found


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
        latents = model(images, return_latents=True)["latents"]
    centre = float(torch.stack(latents).mean(dim=(0, 3)).median())

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


def test_fixed_step_net_is_the_same_size_without_gates():
    config = LatticeConfig(max_channels=6, max_layers=2, max_steps=3)
    lattice, plain = LatticeNet(config, seed=0), FixedStepRecurrentNet(config, seed=0)
    conv = lambda net: sum(p.numel() for n, p in net.named_parameters() if "weight" in n and p.ndim == 4)  # noqa: E731
    assert conv(lattice) == conv(plain)
    out = plain(_images())
    assert out["logits"].shape == (5, 10)
    assert plain.loss(out, torch.tensor([0, 1, 2, 3, 4]))["total"] > 0


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
