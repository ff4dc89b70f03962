"""The trunks whose hidden units come and go, and per-unit views of them (norms, scores, utility).

Two trunks share one interface: :class:`PlasticMLP` (fully connected hidden
layers) and :class:`PlasticConvNet` (convolutional hidden layers, max-pooling
between them, global average pooling before the readout). A *unit* of hidden
layer ``l`` is a neuron (MLP) or a channel (conv). Its **incoming** weights
are row ``i`` of ``hidden[l].weight`` (and ``hidden[l].bias[i]``); its
**outgoing** weights are column ``i`` of the next layer's weight (axis 1:
``hidden[l+1]`` or ``readout``). The structural operations that change them
live in :mod:`brainres.families.plasticity.structure`. Functions take tensors
and return tensors; nothing here reads files or datasets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from brainres.errors import BrainresError

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh}


class PlasticityError(BrainresError, ValueError):
    """A structural operation or model setting that cannot be carried out."""


# ---------------------------------------------------------------- the trunks
class _PlasticTrunk(nn.Module):
    """Shared parts: hidden layers in ``self.hidden``, a linear ``self.readout``."""

    def __init__(self, activation: str):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise PlasticityError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.activation = activation

    @property
    def widths(self) -> tuple[int, ...]:
        """Current number of units in every hidden layer."""
        return tuple(int(layer.weight.shape[0]) for layer in self.hidden)

    def outgoing_name(self, layer: int) -> str:
        """Name of the module that holds layer ``layer``'s outgoing weights."""
        self._check_layer(layer)
        return f"hidden.{layer + 1}" if layer + 1 < len(self.hidden) else "readout"

    def outgoing(self, layer: int) -> nn.Module:
        """The module whose weight axis 1 holds layer ``layer``'s outgoing weights."""
        return self.get_submodule(self.outgoing_name(layer))

    def _check_layer(self, layer: int) -> None:
        if not isinstance(layer, int) or not 0 <= layer < len(self.hidden):
            raise PlasticityError(f"layer must be a hidden-layer index in 0..{len(self.hidden) - 1}, got {layer!r}")

    def n_parameters(self) -> int:
        """Number of trainable scalars."""
        return int(sum(p.numel() for p in self.parameters()))


class PlasticMLP(_PlasticTrunk):
    """Fully connected trunk: ``input -> hidden... -> readout``.

    Parameters
    ----------
    n_inputs : int
        Input features (images are flattened).
    widths : sequence of int
        Units per hidden layer.
    n_classes : int
    activation : {"gelu", "relu", "tanh"}
    """

    kind = "mlp"

    def __init__(self, *, n_inputs: int, widths, n_classes: int, activation: str = "gelu"):
        super().__init__(activation)
        sizes = [int(n_inputs), *(int(w) for w in widths)]
        if len(sizes) < 2 or min(sizes) < 1:
            raise PlasticityError(f"widths must be one or more positive integers, got {tuple(widths)}")
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.readout = nn.Linear(sizes[-1], int(n_classes))

    def forward(self, images: torch.Tensor, *, return_hidden: bool = False):
        """Logits ``(batch, n_classes)``; with ``return_hidden`` also every hidden activation."""
        act = ACTIVATIONS[self.activation]
        h = images.flatten(1)
        hidden = []
        for layer in self.hidden:
            h = act(layer(h))
            hidden.append(h)
        logits = self.readout(h)
        return (logits, hidden) if return_hidden else logits


class PlasticConvNet(_PlasticTrunk):
    """Convolutional trunk: conv (+2x2 max-pool between layers) -> global average pool -> readout.

    Parameters
    ----------
    in_channels : int
    widths : sequence of int
        Channels per convolutional layer (a channel is a unit).
    n_classes : int
    activation : {"gelu", "relu", "tanh"}
    kernel_size : int
        Odd kernel side; 'same' padding.
    """

    kind = "conv"

    def __init__(self, *, in_channels: int, widths, n_classes: int, activation: str = "gelu", kernel_size: int = 3):
        super().__init__(activation)
        sizes = [int(in_channels), *(int(w) for w in widths)]
        if len(sizes) < 2 or min(sizes) < 1:
            raise PlasticityError(f"widths must be one or more positive integers, got {tuple(widths)}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise PlasticityError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        self.hidden = nn.ModuleList(
            nn.Conv2d(a, b, kernel_size, padding=kernel_size // 2) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.readout = nn.Linear(sizes[-1], int(n_classes))

    def forward(self, images: torch.Tensor, *, return_hidden: bool = False):
        """Logits ``(batch, n_classes)``; with ``return_hidden`` also every hidden map (before pooling)."""
        act = ACTIVATIONS[self.activation]
        h = images
        hidden = []
        for index, layer in enumerate(self.hidden):
            h = act(layer(h))
            hidden.append(h)
            if index + 1 < len(self.hidden):
                h = F.max_pool2d(h, 2)
        logits = self.readout(h.mean(dim=(2, 3)))
        return (logits, hidden) if return_hidden else logits


# ------------------------------------------------------------ per-unit views
def unit_activation_summary(hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-unit mean, standard deviation and mean absolute value of one layer's activations.

    For conv maps the statistics pool the batch and all positions.
    """
    flat = hidden.detach().transpose(0, 1).reshape(hidden.shape[1], -1)
    return flat.mean(dim=1), flat.std(dim=1, unbiased=False), flat.abs().mean(dim=1)


def incoming_gradient_norms(model: _PlasticTrunk, layer: int) -> torch.Tensor:
    """Per unit: L2 norm of the loss gradient w.r.t. its incoming weight vector (bias excluded).

    Requires a backward pass to have filled ``.grad``.
    """
    grad = model.hidden[layer].weight.grad
    if grad is None:
        raise PlasticityError(f"hidden layer {layer} has no gradient; call backward() first")
    return grad.detach().flatten(1).norm(dim=1)


def outgoing_weight_norms(model: _PlasticTrunk, layer: int) -> torch.Tensor:
    """Per unit: L2 norm of its outgoing weights (all downstream units and kernel positions)."""
    weight = model.outgoing(layer).weight.detach()
    return weight.transpose(0, 1).flatten(1).norm(dim=1)


def magnitude_scores(model: _PlasticTrunk, layer: int) -> torch.Tensor:
    """Per unit: ``||incoming weights|| * ||outgoing weights||`` (low = prunable)."""
    incoming = model.hidden[layer].weight.detach().flatten(1).norm(dim=1)
    return incoming * outgoing_weight_norms(model, layer)


def contribution(hidden: torch.Tensor, model: _PlasticTrunk, layer: int) -> torch.Tensor:
    """Per unit: mean |activation| times the sum of |outgoing weights| (Dohare et al.'s contribution).

    The running average of this is the *utility* used by continual backprop
    and by utility pruning.
    """
    _, _, mean_abs = unit_activation_summary(hidden)
    outgoing = model.outgoing(layer).weight.detach().abs().transpose(0, 1).flatten(1).sum(dim=1)
    return mean_abs * outgoing


def lowest_units(scores: torch.Tensor, n: int, candidates: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of the ``n`` lowest-scoring units (ties: lower index first), sorted ascending."""
    candidates = torch.arange(scores.numel()) if candidates is None else candidates
    if n > candidates.numel():
        raise PlasticityError(f"asked for {n} units but only {candidates.numel()} are candidates")
    order = torch.argsort(scores[candidates], stable=True)
    return torch.sort(candidates[order[:n]]).values

