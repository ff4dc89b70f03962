"""The image-model contract: what run_model accepts, what it refuses, and how it says why."""

import numpy as np
import pytest
import torch

from brainres.models.contract import (
    ContractError,
    halting_rule,
    halting_steps,
    parameter_count,
    resource_summary,
    run_model,
    seeded,
    task_loss,
)

BATCH, STEPS, CLASSES = 4, 3, 5


def _images(batch=BATCH):
    return torch.rand(batch, 1, 6, 6, generator=torch.Generator().manual_seed(0))


def _logits(batch=BATCH, steps=STEPS, classes=CLASSES):
    return torch.randn(batch, steps, classes, generator=torch.Generator().manual_seed(1))


class Returns(torch.nn.Module):
    """A model whose forward returns a fixed output, whatever the images (named after what it returns)."""

    def __init__(self, output):
        super().__init__()
        self.output = output

    def forward(self, images):
        return self.output


def _uniform_halting(batch=BATCH, steps=STEPS):
    return torch.full((batch, steps), 1.0 / steps)


# ---------------------------------------------------------------- what passes
def test_a_plain_tensor_is_per_step_logits():
    logits = _logits()
    out = run_model(Returns(logits), _images(), n_classes=CLASSES)
    assert torch.equal(out.logits, logits)
    assert out.halting_probability is None and out.cost is None and out.latents == {}
    assert out.n_steps == STEPS and out.n_classes == CLASSES


def test_a_full_dict_is_checked_pooled_and_passed_on():
    spatial = torch.randn(BATCH, STEPS, 2, 3, 3)
    units = torch.randn(BATCH, STEPS, 7)
    output = {"logits": _logits(), "halting_probability": _uniform_halting(), "cost": torch.tensor([0.25]),
              "latents": {"conv": spatial, "dense": units}, "anything": "else is ignored"}
    out = run_model(Returns(output), _images(), n_classes=CLASSES, latents=True)
    assert torch.equal(out.halting_probability, output["halting_probability"])
    assert out.cost.shape == () and float(out.cost) == 0.25  # a one-element tensor becomes a scalar
    assert list(out.latents) == ["conv", "dense"]  # the model's order
    torch.testing.assert_close(out.latents["conv"], spatial.mean(dim=(3, 4)))  # spatial maps averaged
    assert torch.equal(out.latents["dense"], units)  # (batch, step, unit) kept as it is
    assert run_model(Returns(output), _images()).latents == {}  # latents only when asked for


# ------------------------------------------------------------- what does not
def test_two_dimensional_logits_suggest_a_step_dimension():
    with pytest.raises(ContractError, match=r"shape \(batch=4, step, class\).*add a step dimension: logits\[:, None\]"):
        run_model(Returns(torch.randn(BATCH, CLASSES)), _images())


@pytest.mark.parametrize(
    "output, words",
    [([_logits()], "must return per-step logits .* it returned a list"),
     ({"halting_probability": _uniform_halting()}, "dict with 'logits'; it returned a dict with keys"),
     (_logits(batch=BATCH + 1), r"batch=4.*\(5, 3, 5\)"),
     (torch.randn(BATCH, STEPS, CLASSES, 2), r"\(4, 3, 5, 2\)"),
     (torch.ones(BATCH, STEPS, CLASSES, dtype=torch.long), "floating point")],
)
def test_malformed_logits_are_named(output, words):
    with pytest.raises(ContractError, match=words):
        run_model(Returns(output), _images())


def test_wrong_number_of_classes():
    with pytest.raises(ContractError, match="logits for 5 classes, but its classes list has 10"):
        run_model(Returns(_logits()), _images(), n_classes=10)
    run_model(Returns(_logits()), _images(), n_classes=CLASSES)  # the right number passes


@pytest.mark.parametrize(
    "halting, words",
    [(torch.full((BATCH, STEPS), 0.5), "rows summing to 1.*1.5000 to 1.5000"),
     (torch.tensor([[1.5, -0.5, 0.0]] * BATCH), "non-negative"),
     (torch.tensor([[float("nan"), 0.5, 0.5]] * BATCH), "probability distribution"),
     (torch.full((BATCH, STEPS + 1), 0.25), r"shape \(batch=4, step=3\)"),
     (torch.full((BATCH,), 1.0), r"shape \(batch=4, step=3\)"),
     ([[1.0, 0.0, 0.0]] * BATCH, r"got a list")],
)
def test_halting_that_is_not_a_distribution_over_steps(halting, words):
    with pytest.raises(ContractError, match=words):
        run_model(Returns({"logits": _logits(), "halting_probability": halting}), _images())


def test_halting_rows_summing_to_one_within_rounding_pass():
    halting = _uniform_halting() + 1e-5
    assert run_model(Returns({"logits": _logits(), "halting_probability": halting}), _images()) is not None


@pytest.mark.parametrize(
    "latent, words",
    [(torch.randn(BATCH + 1, STEPS, 4),
      r"latents\['layer'\] must be a tensor \(batch=4, step=3, \.\.\.\).*\(5, 3, 4\)"),
     (torch.randn(BATCH, STEPS + 2, 4, 2, 2), r"step=3.*\(4, 5, 4, 2, 2\)"),
     (torch.randn(BATCH, STEPS), r"\(4, 3\)"),
     (np.zeros((BATCH, STEPS, 4)), "got a ndarray")],
)
def test_latents_with_the_wrong_batch_or_step(latent, words):
    model = Returns({"logits": _logits(), "latents": {"layer": latent}})
    with pytest.raises(ContractError, match=words):
        run_model(model, _images(), latents=True)
    run_model(model, _images())  # latents are not read unless asked for


def test_latents_must_be_a_dict():
    with pytest.raises(ContractError, match="latents must be a dict"):
        run_model(Returns({"logits": _logits(), "latents": [torch.randn(BATCH, STEPS, 4)]}), _images(), latents=True)


@pytest.mark.parametrize("cost, words", [(torch.ones(3), r"scalar tensor, got a tensor of shape \(3,\)"),
                                         (torch.ones(BATCH, 1), r"\(4, 1\)"), (0.5, "got a float")])
def test_cost_must_be_a_scalar_tensor(cost, words):
    with pytest.raises(ContractError, match=words):
        run_model(Returns({"logits": _logits(), "cost": cost}), _images())


# --------------------------------------------------------------- the helpers
def test_task_loss_without_halting_is_the_mean_cross_entropy_over_steps():
    logits = _logits()
    labels = torch.tensor([0, 1, 2, 3])
    out = run_model(Returns(logits), _images())
    by_hand = torch.stack([torch.nn.functional.cross_entropy(logits[:, n], labels) for n in range(STEPS)]).mean()
    for weight in (0.0, 0.5):  # the step-loss weight only concerns models with halting
        torch.testing.assert_close(task_loss(out, labels, step_loss_weight=weight), by_hand)


def test_halting_steps_median_with_halting_entropy_threshold_without():
    logits = np.zeros((2, 3, 4))
    logits[0, 1:, 0] = 20.0  # stimulus 0 is sure from step 2; stimulus 1 never
    halting = np.array([[0.2, 0.2, 0.6], [0.6, 0.2, 0.2]])
    assert halting_steps(logits, halting).tolist() == [3, 1]
    assert halting_steps(logits, None, entropy_threshold=0.5).tolist() == [2, 3]
    assert "median halting step" in halting_rule(True)
    assert "entropy-threshold step" in halting_rule(False, 0.3) and "0.3" in halting_rule(False, 0.3)


def test_resource_summary_is_checked():
    class Summarised(torch.nn.Module):
        def __init__(self, summary):
            super().__init__()
            self.summary = summary
            self.weight = torch.nn.Parameter(torch.ones(2, 3))
            self.frozen = torch.nn.Parameter(torch.ones(5), requires_grad=False)

        def resource_summary(self):
            return self.summary

    assert resource_summary(Summarised({"width": [1, 2.5], "depth": 3})) == {"width": [1.0, 2.5], "depth": 3.0}
    assert resource_summary(Returns(_logits())) == {}  # optional
    for bad, words in (({"width": "wide"}, r"resource_summary\(\)\['width'\]"), ({"flag": True}, "flag"),
                       ([1, 2], "must return a dict")):
        with pytest.raises(ContractError, match=words):
            resource_summary(Summarised(bad))
    assert parameter_count(Summarised({})) == 6  # trainable parameters only


def test_seeded_block_is_repeatable_and_leaves_the_global_state_alone():
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    with seeded(3):
        first = torch.rand(4)
    with seeded(3):
        again = torch.rand(4)
    assert torch.equal(first, again)
    assert torch.equal(torch.rand(2), expected)


def test_latents_given_as_a_tensor_are_a_contract_error():
    with pytest.raises(ContractError, match="latents must be a dict"):
        run_model(Returns({"logits": _logits(), "latents": torch.randn(BATCH, STEPS, 4)}), _images(), latents=True)


def test_halting_the_contract_accepts_can_be_evaluated():
    from brainres.train import evaluate

    halting = torch.tensor([[0.3, 0.3, 0.4005]]).repeat(BATCH, 1)  # rows sum to 1.0005: within the contract's 1e-3
    model = Returns({"logits": _logits(), "halting_probability": halting})
    assert run_model(model, _images()).halting_probability is halting
    table = evaluate(model, _images(), torch.tensor([0, 1, 2, 3]))
    assert table["halting_step"].tolist() == [2] * BATCH  # cumulative 0.3, 0.6: the median is step 2
