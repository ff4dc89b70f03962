"""The image-model contract: what any recurrent image model gives brainres, and how it is read.

A model is any ``torch.nn.Module``. Given ``images`` of shape ``(batch,
channel, height, width)``, float in [0, 1], ``model(images)`` returns either a
tensor of per-step class logits ``(batch, step, class)`` or a dict with

``logits``               ``(batch, step, class)``, required;
``halting_probability``  ``(batch, step)``, optional: a distribution over steps
                         (adaptive halting), every row sums to 1;
``latents``              ``{name: (batch, step, ...)}``, optional: a layer's
                         state at every step; a ``(batch, step, channel,
                         *spatial)`` map is averaged over its spatial dims, a
                         ``(batch, step, unit)`` tensor is kept, and each layer
                         keeps its own width;
``cost``                 a scalar tensor, optional, added to the training loss
                         (how the lattice's breadth, depth and time costs enter).

Other keys are ignored. A module may also define ``resource_summary()``
returning ``{name: number or list of numbers per layer}``; brainres logs it per
epoch and exports it per seed. ``docs/your-model.md`` is the user's guide.

Everything in brainres that trains, exports or reads out image models goes
through :func:`run_model`, so the lattice and a user's network are treated the
same way.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from brainres.errors import BrainresError
from brainres.models import readouts

CONTRACT_KEYS = ("logits", "halting_probability", "latents", "cost")


class ContractError(BrainresError, ValueError):
    """A model's output does not meet the image-model contract; says what it returned instead."""


@dataclasses.dataclass
class StepOutputs:
    """One batch of a model's output, checked and in the contract's shapes.

    Attributes
    ----------
    logits : torch.Tensor, (batch, step, class)
    halting_probability : torch.Tensor (batch, step) or None
    latents : dict of str -> torch.Tensor (batch, step, unit)
        Spatially pooled, in the model's order; empty unless asked for.
    cost : torch.Tensor (scalar) or None
    """

    logits: torch.Tensor
    halting_probability: torch.Tensor | None = None
    latents: dict = dataclasses.field(default_factory=dict)
    cost: torch.Tensor | None = None

    @property
    def n_steps(self) -> int:
        return int(self.logits.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.logits.shape[2])


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(value)}"
    return f"a {type(value).__name__}"


def pool_latent(name: str, value, batch: int, steps: int) -> torch.Tensor:
    """A latent as ``(batch, step, unit)``: spatial maps averaged over their spatial dims."""
    if not isinstance(value, torch.Tensor) or value.ndim < 3 or tuple(value.shape[:2]) != (batch, steps):
        raise ContractError(f"latents[{name!r}] must be a tensor (batch={batch}, step={steps}, ...), "
                            f"got {_describe(value)}")
    if value.ndim > 3:
        value = value.mean(dim=tuple(range(3, value.ndim)))
    return value


def run_model(model: torch.nn.Module, images: torch.Tensor, *, n_classes: int | None = None,
              latents: bool = False) -> StepOutputs:
    """Run ``model`` on a batch and check its output against the contract.

    Parameters
    ----------
    model : torch.nn.Module
    images : torch.Tensor, (batch, channel, height, width)
    n_classes : int, optional
        The number of classes the model must give logits for.
    latents : bool
        Pool and return the latents (they are skipped otherwise).

    Returns
    -------
    StepOutputs

    Examples
    --------
    >>> import torch
    >>> class TwoSteps(torch.nn.Module):
    ...     def forward(self, images):
    ...         logits = images.flatten(1)[:, :3]
    ...         return torch.stack([logits, 2 * logits], dim=1)
    >>> run_model(TwoSteps(), torch.ones(4, 1, 2, 2)).logits.shape
    torch.Size([4, 2, 3])
    """
    output = model(images)
    batch = images.shape[0]
    if isinstance(output, torch.Tensor):
        output = {"logits": output}
    if not isinstance(output, dict) or "logits" not in output:
        raise ContractError(f"{type(model).__name__}.forward must return per-step logits (batch, step, class) or a "
                            f"dict with 'logits'; it returned {_describe(output)}")
    logits = output["logits"]
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3 or logits.shape[0] != batch:
        hint = " (one step? add a step dimension: logits[:, None])" if isinstance(logits, torch.Tensor) and logits.ndim == 2 else ""
        raise ContractError(f"logits must have shape (batch={batch}, step, class), got {_describe(logits)}{hint}")
    if not torch.is_floating_point(logits):
        raise ContractError(f"logits must be floating point, got {logits.dtype}")
    if n_classes is not None and logits.shape[2] != n_classes:
        raise ContractError(f"the model gives logits for {logits.shape[2]} classes, but its classes list has "
                            f"{n_classes}; the last dimension of logits must match the classes")
    steps = logits.shape[1]
    halting = output.get("halting_probability")
    if halting is not None:
        if not isinstance(halting, torch.Tensor) or tuple(halting.shape) != (batch, steps):
            raise ContractError(f"halting_probability must have shape (batch={batch}, step={steps}), "
                                f"got {_describe(halting)}")
        with torch.no_grad():
            sums = halting.detach().sum(dim=1)
            if not bool(torch.isfinite(halting).all()) or bool((halting < -1e-6).any()) or \
                    bool(((sums - 1).abs() > readouts.HALTING_TOLERANCE).any()):
                raise ContractError("halting_probability must be a probability distribution over steps (non-negative, "
                                    f"rows summing to 1); row sums range from {float(sums.min()):.4f} to "
                                    f"{float(sums.max()):.4f}")
    cost = output.get("cost")
    if cost is not None and (not isinstance(cost, torch.Tensor) or cost.numel() != 1):
        raise ContractError(f"cost must be a scalar tensor, got {_describe(cost)}")
    pooled = {}
    if latents:
        raw = output.get("latents")
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise ContractError(f"latents must be a dict of name -> tensor (batch, step, ...), got {_describe(raw)}")
        pooled = {str(name): pool_latent(str(name), value, batch, steps) for name, value in raw.items()}
    return StepOutputs(logits=logits, halting_probability=halting, latents=pooled,
                       cost=None if cost is None else cost.reshape(()))


def task_loss(outputs: StepOutputs, labels: torch.Tensor, *, step_loss_weight: float) -> torch.Tensor:
    """Cross-entropy over steps: the training loss of every contract model, before its ``cost``.

    With halting probabilities it is PonderNet's halting-weighted cross-entropy
    plus ``step_loss_weight`` times the unweighted mean over steps (without it
    halting can collapse onto step 1 before later steps have learned
    anything). Without them it is the mean cross-entropy over steps, so every
    step learns to read out, as in Spoerer et al. (2020).
    """
    logits = outputs.logits
    batch, steps, classes = logits.shape
    per_step = F.cross_entropy(logits.reshape(batch * steps, classes), labels.repeat_interleave(steps),
                               reduction="none").view(batch, steps)
    if outputs.halting_probability is None:
        return per_step.mean()
    return (outputs.halting_probability * per_step).sum(dim=1).mean() + step_loss_weight * per_step.mean()


def halting_steps(logits: np.ndarray, halting_probability: np.ndarray | None, *,
                  entropy_threshold: float = 0.5) -> np.ndarray:
    """The step at which the model answers, per stimulus (1-based).

    A model with halting answers at its median halting step; one without, at
    the first step whose normalised entropy falls below ``entropy_threshold``
    (the last step if never), the readout of Spoerer et al. (2020).
    """
    if halting_probability is not None:
        return readouts.median_halting_step(halting_probability).astype(int)
    return readouts.entropy_threshold_step(logits, threshold=entropy_threshold).astype(int)


def halting_rule(has_halting: bool, entropy_threshold: float = 0.5) -> str:
    """Words for :func:`halting_steps`' rule, for exports and methods text."""
    if has_halting:
        return "median halting step: first step whose cumulative halting probability reaches 0.5"
    return (f"entropy-threshold step: first step whose normalised entropy is below {entropy_threshold:g} "
            "(the last step if never); the model has no halting head")


def resource_summary(model: torch.nn.Module) -> dict:
    """The model's ``resource_summary()`` if it has one, checked: name -> number or list of numbers."""
    method = getattr(model, "resource_summary", None)
    if method is None:
        return {}
    with torch.no_grad():
        summary = method()
    if not isinstance(summary, dict):
        raise ContractError(f"{type(model).__name__}.resource_summary() must return a dict, got {_describe(summary)}")
    checked = {}
    for name, value in summary.items():
        if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
            checked[str(name)] = [float(v) for v in value]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            checked[str(name)] = float(value)
        else:
            raise ContractError(f"resource_summary()[{name!r}] must be a number or a list of numbers, got {value!r}")
    return checked


def parameter_count(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


@contextlib.contextmanager
def seeded(seed: int | None):
    """Run a block under ``torch.manual_seed(seed)`` without disturbing the global random state."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
