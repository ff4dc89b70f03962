"""Structural operations on a plastic trunk (in place) and Adam's state across them.

- :func:`insert_units` appends new units (``random``, ``zero`` outgoing,
  Net2Net ``split`` or ``gradmax``);
- :func:`remove_units` drops units, keeping every other weight unchanged;
- :func:`reinitialize_units` re-draws units in place (continual backprop).

Each returns an *index map* ``{parameter name: [(axis, source), ...]}`` that
says, for every affected parameter, which old slice each new slice came from
(``-1`` = new unit; several steps when consecutive changes touch the same
parameter, see :func:`merge_index_maps`); :func:`transplant_adam_state` uses
it to carry Adam's moments across the change.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from brainres.families.plasticity.network import (
    PlasticityError,
    _PlasticTrunk,
    outgoing_weight_norms,
)

INSERTIONS = ("random", "zero", "split", "gradmax")
REMOVALS = ("magnitude", "utility")
OPTIMIZER_STATES = ("keep", "reset")


# ---------------------------------------------------- structural operations
def _set_parameter(module: nn.Module, name: str, value: torch.Tensor) -> None:
    setattr(module, name, nn.Parameter(value.detach().clone()))


def _sync_sizes(module: nn.Module) -> None:
    """Keep the module's size attributes (used by repr and by torch) in line with its weight."""
    if isinstance(module, nn.Linear):
        module.out_features, module.in_features = module.weight.shape
    elif isinstance(module, nn.Conv2d):
        module.out_channels, module.in_channels = module.weight.shape[:2]


def _uniform(shape, bound: float, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    values = torch.rand(shape, generator=generator, dtype=like.dtype) * 2 - 1
    return values * bound


def _index_map(model, layer, source: torch.Tensor) -> dict:
    out = model.outgoing_name(layer)
    return {
        f"hidden.{layer}.weight": [(0, source)],
        f"hidden.{layer}.bias": [(0, source)],
        f"{out}.weight": [(1, source)],
    }


def merge_index_maps(*maps: dict) -> dict:
    """Combine index maps of changes applied one after another (in the given order).

    A parameter touched twice (e.g. ``hidden.1.weight`` when both hidden layers
    0 and 1 change) keeps both steps, applied in order.
    """
    merged: dict = {}
    for index_map in maps:
        for name, steps in index_map.items():
            merged.setdefault(name, []).extend(steps)
    return merged


def insert_units(
    model: _PlasticTrunk,
    layer: int,
    n_new: int,
    *,
    method: str = "random",
    generator: torch.Generator,
    split_from: torch.Tensor | None = None,
    split_noise: float = 0.0,
    gradmax_batch: tuple[torch.Tensor, torch.Tensor] | None = None,
    gradmax_scale: float | None = None,
) -> dict:
    """Append ``n_new`` units to hidden layer ``layer``, in place.

    Parameters
    ----------
    model : PlasticMLP or PlasticConvNet
    layer : int
        Hidden layer that grows.
    n_new : int
    method : {"random", "zero", "split", "gradmax"}
        ``"random"``: incoming and outgoing weights drawn like PyTorch's
        default initialisation (uniform, bound ``1/sqrt(fan_in)`` of the layer
        that owns them). ``"zero"``: incoming as ``"random"``, outgoing weights
        zero, so the function is unchanged and the incoming gradient is
        exactly zero at insertion. ``"split"`` (Net2Net, Chen et al. 2016):
        each new unit copies the incoming weights and bias of a source unit
        and the source's outgoing weights are shared between the two
        (``w/2 + e`` and ``w/2 - e``), which preserves the function exactly.
        ``"gradmax"`` (Evci et al. 2022): incoming weights and bias zero (the
        function is unchanged) and outgoing weights set to the top right
        singular vectors of the linear map from outgoing weights to the
        incoming-weight gradient on ``gradmax_batch``, scaled to
        ``gradmax_scale``; this maximises the new units' gradient norm.
    generator : torch.Generator
        Source of every random draw.
    split_from : tensor of int, optional
        Source units for ``"split"`` (default: drawn without replacement).
    split_noise : float
        ``e = split_noise * (w/2) * N(0, 1)``: breaks the symmetry between a
        split unit and its copy without changing the function (0 keeps the
        copies identical forever).
    gradmax_batch : (images, labels)
        Batch on which ``"gradmax"`` evaluates the gradient map (cross-entropy).
    gradmax_scale : float, optional
        L2 norm of each new outgoing vector; default the mean outgoing norm of
        the incumbent units.

    Returns
    -------
    dict
        Index map ``{parameter name: [(axis, source)]}`` with ``source[i] = -1``
        for new units (they are the last ``n_new`` along the unit axis).
    """
    model._check_layer(layer)
    if method not in INSERTIONS:
        raise PlasticityError(f"insertion method must be one of {INSERTIONS}, got {method!r}")
    if not isinstance(n_new, int) or n_new < 1:
        raise PlasticityError(f"n_new must be a positive integer, got {n_new!r}")
    incoming, outgoing = model.hidden[layer], model.outgoing(layer)
    w_in, b_in, w_out = incoming.weight.detach(), incoming.bias.detach(), outgoing.weight.detach()
    n_old = w_in.shape[0]
    in_shape = (n_new, *w_in.shape[1:])
    out_shape = (w_out.shape[0], n_new, *w_out.shape[2:])
    in_bound = 1.0 / math.sqrt(w_in[0].numel())
    # The downstream fan-in after growth sets the scale of new outgoing weights.
    out_bound = 1.0 / math.sqrt((n_old + n_new) * w_out[0, 0].numel())
    new_w_out_old = w_out

    if method in ("random", "zero"):
        new_in = _uniform(in_shape, in_bound, generator, w_in)
        new_bias = _uniform((n_new,), in_bound, generator, b_in)
        new_out = _uniform(out_shape, out_bound, generator, w_out) if method == "random" else w_out.new_zeros(out_shape)
    elif method == "split":
        if split_from is None:
            if n_new > n_old:
                raise PlasticityError(f"split needs n_new <= {n_old} existing units, got {n_new}")
            split_from = torch.randperm(n_old, generator=generator)[:n_new]
        split_from = torch.as_tensor(split_from, dtype=torch.long)
        if split_from.numel() != n_new or torch.unique(split_from).numel() != n_new:
            raise PlasticityError(f"split_from must list {n_new} distinct units, got {split_from.tolist()}")
        if split_from.min() < 0 or split_from.max() >= n_old:
            raise PlasticityError(f"split_from units must lie in 0..{n_old - 1}, got {split_from.tolist()}")
        new_in = w_in[split_from].clone()
        new_bias = b_in[split_from].clone()
        half = w_out[:, split_from] / 2
        noise = split_noise * half * torch.randn(half.shape, generator=generator, dtype=half.dtype)
        new_out = half - noise
        new_w_out_old = w_out.clone()
        new_w_out_old[:, split_from] = half + noise
    else:  # gradmax
        if model.activation == "relu":
            raise PlasticityError(
                "gradmax inserts units with zero incoming weights; with activation 'relu' (derivative 0 at 0) "
                "they would never receive a gradient; use 'gelu' or 'tanh'"
            )
        if gradmax_batch is None:
            raise PlasticityError("gradmax needs gradmax_batch=(images, labels)")
        directions = gradmax_directions(model, layer, gradmax_batch)
        if n_new > directions.shape[0]:
            raise PlasticityError(f"gradmax can add at most {directions.shape[0]} units here, got {n_new}")
        scale = float(outgoing_weight_norms(model, layer).mean()) if gradmax_scale is None else float(gradmax_scale)
        new_in = w_in.new_zeros(in_shape)
        new_bias = b_in.new_zeros((n_new,))
        new_out = (scale * directions[:n_new]).reshape(n_new, w_out.shape[0], *w_out.shape[2:]).transpose(0, 1)

    _set_parameter(incoming, "weight", torch.cat([w_in, new_in], dim=0))
    _set_parameter(incoming, "bias", torch.cat([b_in, new_bias], dim=0))
    _set_parameter(outgoing, "weight", torch.cat([new_w_out_old, new_out.to(w_out.dtype)], dim=1))
    _sync_sizes(incoming)
    _sync_sizes(outgoing)
    source = torch.cat([torch.arange(n_old), torch.full((n_new,), -1)])
    return _index_map(model, layer, source)


def gradmax_directions(model: _PlasticTrunk, layer: int, batch) -> torch.Tensor:
    """Unit-norm outgoing vectors that maximise a zero-incoming unit's gradient, best first.

    With incoming weights zero, a new unit does not change the output, and the
    gradient of the loss w.r.t. its incoming weights is linear in its outgoing
    weights: ``g = J w_out``. ``J`` is found exactly by double backward on a
    copy of the model with one probe unit (zero in, zero out); the answer is
    the right singular vectors of ``J``, shape ``(k, n_out_flat)``.
    """
    images, labels = batch
    probe = copy.deepcopy(model)
    insert_units(probe, layer, 1, method="zero", generator=torch.Generator().manual_seed(0))
    incoming, outgoing = probe.hidden[layer], probe.outgoing(layer)
    with torch.no_grad():
        incoming.weight[-1].zero_()
        incoming.bias[-1].zero_()
    loss = F.cross_entropy(probe(images), labels)
    (grad_in,) = torch.autograd.grad(loss, incoming.weight, create_graph=True)
    grad_new = grad_in[-1].flatten()
    rows = []
    for index in range(grad_new.numel()):
        (row,) = torch.autograd.grad(grad_new[index], outgoing.weight, retain_graph=True, allow_unused=True)
        rows.append(torch.zeros(outgoing.weight[:, -1].numel()) if row is None else row[:, -1].flatten())
    jacobian = torch.stack(rows).detach()  # (incoming size, outgoing size)
    _, _, right = torch.linalg.svd(jacobian, full_matrices=False)
    return right


def remove_units(model: _PlasticTrunk, layer: int, units) -> dict:
    """Delete ``units`` of hidden layer ``layer`` (incoming row, bias, outgoing column), in place.

    Every other weight is kept bit for bit, so the new network equals the old
    one with those units' outputs set to zero.

    Returns
    -------
    dict
        Index map ``{parameter name: [(axis, source)]}`` (``source`` = kept units).
    """
    model._check_layer(layer)
    incoming, outgoing = model.hidden[layer], model.outgoing(layer)
    n_old = incoming.weight.shape[0]
    units = torch.as_tensor(units, dtype=torch.long).reshape(-1)
    if units.numel() and (units.min() < 0 or units.max() >= n_old):
        raise PlasticityError(f"units to remove must lie in 0..{n_old - 1}, got {units.tolist()}")
    if torch.unique(units).numel() != units.numel():
        raise PlasticityError(f"units to remove must be distinct, got {units.tolist()}")
    if units.numel() >= n_old:
        raise PlasticityError(f"cannot remove all {n_old} units of hidden layer {layer}")
    keep = torch.tensor([i for i in range(n_old) if i not in set(units.tolist())], dtype=torch.long)
    _set_parameter(incoming, "weight", incoming.weight.detach()[keep])
    _set_parameter(incoming, "bias", incoming.bias.detach()[keep])
    _set_parameter(outgoing, "weight", outgoing.weight.detach()[:, keep])
    _sync_sizes(incoming)
    _sync_sizes(outgoing)
    return _index_map(model, layer, keep)


def reinitialize_units(model: _PlasticTrunk, layer: int, units, *, generator: torch.Generator) -> dict:
    """Continual-backprop replacement (Dohare et al. 2024), in place.

    The chosen units get fresh incoming weights (default-init distribution),
    zero bias and zero outgoing weights. The replacement adds nothing to the
    output, so the network then computes what the old one computed with the
    replaced units silenced (their contribution, low by choice, is lost).

    Returns
    -------
    dict
        Index map with ``source[i] = -1`` for the replaced units (same shapes).
    """
    model._check_layer(layer)
    incoming, outgoing = model.hidden[layer], model.outgoing(layer)
    units = torch.as_tensor(units, dtype=torch.long).reshape(-1)
    bound = 1.0 / math.sqrt(incoming.weight[0].numel())
    with torch.no_grad():
        for unit in units.tolist():
            incoming.weight[unit] = _uniform(incoming.weight[unit].shape, bound, generator, incoming.weight)
            incoming.bias[unit] = 0.0
            outgoing.weight[:, unit] = 0.0
    source = torch.arange(incoming.weight.shape[0])
    source[units] = -1
    return _index_map(model, layer, source)


# ------------------------------------------------------- optimizer handling
def adam_state_by_name(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Adam's per-parameter state keyed by parameter name (taken before a structural change)."""
    return {name: optimizer.state[p] for name, p in model.named_parameters() if p in optimizer.state}


def transplant_adam_state(
    old_state: dict, model: nn.Module, optimizer: torch.optim.Optimizer, index_maps: dict, *, mode: str = "keep"
) -> None:
    """Fill a fresh optimizer's state from the state before a structural change.

    ``mode="keep"``: every incumbent slice keeps its first and second moments
    and its step count; slices of new (or re-initialised) units start with
    zero moments. ``mode="reset"``: nothing is carried over (the optimizer
    starts afresh for all parameters). Parameters untouched by the change keep
    their state in ``"keep"`` mode.
    """
    if mode not in OPTIMIZER_STATES:
        raise PlasticityError(f"optimizer_state must be one of {OPTIMIZER_STATES}, got {mode!r}")
    if mode == "reset":
        return
    for name, param in model.named_parameters():
        state = old_state.get(name)
        if not state:
            continue
        new_state = {"step": state["step"].clone()}
        for key in ("exp_avg", "exp_avg_sq"):
            value = state[key]
            for axis, source in index_maps.get(name, ()):
                shape = list(value.shape)
                shape[axis] = source.numel()
                moved = value.new_zeros(shape)
                kept = source >= 0
                index = [slice(None)] * value.dim()
                index[axis] = kept
                take = [slice(None)] * value.dim()
                take[axis] = source[kept]
                moved[tuple(index)] = value[tuple(take)]
                value = moved
            new_state[key] = value.clone()
        optimizer.state[param] = new_state
