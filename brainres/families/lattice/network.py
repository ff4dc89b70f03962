"""The breadth-depth-time lattice: a recurrent conv net that pays for what it uses.

Every layer holds a hidden state that is updated at every time step from the
layer below (bottom-up), from itself (lateral) and optionally from the layer
above (top-down). A readout at every step gives class logits, and a halting
head gives the probability of stopping at that step (PonderNet, Banino et al.
2021). Three differentiable costs pull the network towards using less:

- breadth: a rank-weighted L1 cost on per-channel gates; channels whose gate
  reaches ~0 are dead, and the active width can be read off the gates;
- depth: a gate per layer on a residual path; a closed layer is the identity,
  and the sum of the layer gates is the effective depth;
- time: the expected number of steps under the halting distribution.

The model takes tensors and returns tensors; it knows nothing of files,
datasets or statistics.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from brainres.families.lattice.config import LatticeConfig
from brainres.models.contract import ContractError, seeded


def halting_distribution(halting_lambda: torch.Tensor) -> torch.Tensor:
    """Turn per-step conditional halting probabilities into a distribution over steps.

    ``p_n = lambda_n * prod_{j<n} (1 - lambda_j)``; the last step takes the
    remainder so every row sums to one.

    Parameters
    ----------
    halting_lambda : torch.Tensor, shape (batch, step)
        Probability of halting at step n given that no earlier step halted.

    Returns
    -------
    torch.Tensor, shape (batch, step)
    """
    not_halted = torch.cumprod(1 - halting_lambda, dim=1)
    # Probability of still running when step n starts: 1, (1-l1), (1-l1)(1-l2), ...
    running = torch.cat([torch.ones_like(not_halted[:, :1]), not_halted[:, :-1]], dim=1)
    probability = running * halting_lambda
    return torch.cat([probability[:, :-1], running[:, -1:]], dim=1)


def geometric_prior(n_steps: int, halting_prior: float) -> torch.Tensor:
    """Truncated geometric distribution over steps 1..n_steps (normalised)."""
    steps = torch.arange(n_steps, dtype=torch.float32)
    prior = halting_prior * (1 - halting_prior) ** steps
    return prior / prior.sum()


def _shrink(maps: torch.Tensor, downsample: bool) -> torch.Tensor:
    """Maps as the next layer up receives them: halved by 2 x 2 average pooling when layers downsample."""
    return F.avg_pool2d(maps, 2, ceil_mode=True) if downsample else maps


def _zero_states(encoded: torch.Tensor, n_layers: int, downsample: bool) -> list:
    """Zero initial states, one per layer, each the size of the input that layer receives."""
    states = [torch.zeros_like(encoded)]
    for _ in range(n_layers - 1):
        states.append(_shrink(states[-1], downsample))
    return states


class _LatticeLayer(nn.Module):
    """One recurrent layer: bottom-up + lateral (+ top-down) conv, norm, channel gates."""

    def __init__(self, channels: int, kernel_size: int, top_down: bool):
        super().__init__()
        padding = kernel_size // 2
        self.bottom_up = nn.Conv2d(channels, channels, kernel_size, padding=padding)
        self.lateral = nn.Conv2d(channels, channels, kernel_size, padding=padding, bias=False)
        self.top_down = (
            nn.Conv2d(channels, channels, kernel_size, padding=padding, bias=False) if top_down else None
        )
        # Normalisation without its own scale: the channel gates are the scale,
        # so a gate at zero really silences its channel.
        self.norm = nn.GroupNorm(1, channels, affine=False)
        self.channel_gate = nn.Parameter(torch.ones(channels))
        self.depth_logit = nn.Parameter(torch.tensor(2.0))

    def update_scale(self) -> torch.Tensor:
        """Per-channel scale of the residual update: depth gate x channel gates, shape (1, C, 1, 1)."""
        return (torch.sigmoid(self.depth_logit) * self.channel_gate).view(1, -1, 1, 1)

    def forward(self, below, previous, above, scale=None):
        drive = self.bottom_up(below) + self.lateral(previous)
        if self.top_down is not None and above is not None:
            drive = drive + self.top_down(above)
        # Residual path: with the depth gate closed (scale 0) the layer passes
        # its input on unchanged; a zero channel gate silences that channel.
        scale = self.update_scale() if scale is None else scale
        return below + F.relu(self.norm(drive)) * scale


class LatticeNet(nn.Module):
    """Breadth-depth-time lattice with a readout and a halting head at every step.

    Parameters
    ----------
    config : LatticeConfig
        Bounds and pressures.
    seed : int, optional
        When given, parameters are initialised from this seed (without touching
        the global random state).

    Notes
    -----
    The input is presented at every step. The stem (one conv + ReLU) maps the
    image to ``max_channels`` feature maps once; it is a fixed cost and not
    gated. All layers keep the input's spatial size; the readout average-pools
    every layer's state to a small grid (``readout_pool``) and concatenates them.
    """

    def __init__(self, config: LatticeConfig, seed: int | None = None):
        super().__init__()
        if not isinstance(config, LatticeConfig):
            raise TypeError(f"config must be a LatticeConfig, got {type(config).__name__}")
        self.config = config
        channels = config.max_channels
        with seeded(seed):
            self.stem = nn.Conv2d(config.in_channels, channels, config.kernel_size, stride=config.stem_stride,
                                  padding=config.kernel_size // 2)
            self.layers = nn.ModuleList(
                _LatticeLayer(channels, config.kernel_size, config.top_down) for _ in range(config.max_layers)
            )
            # "pooled": the readout sees every layer, so a shallow answer is possible early.
            pooled_size = config.max_layers * channels * config.readout_pool**2
            if config.readout == "center":
                pooled_size = channels
            self.readout = nn.Linear(pooled_size, config.n_classes)
            # Halting follows how sure the readout is about this stimulus
            # (and, for "features", the pooled states themselves).
            if config.halting == "features":
                self.halting_head = nn.Linear(pooled_size + 2, 1)
                nn.init.constant_(self.halting_head.bias, -1.0)
            else:
                # softplus(raw) = 6: a readout with certainty 0.9 halts with
                # probability ~0.8, one with certainty 0.3 with ~0.1.
                self.halting_slope_raw = nn.Parameter(torch.tensor(6.0 + math.log1p(-math.exp(-6.0))))
                self.halting_step_bias = nn.Parameter(torch.full((config.max_steps,), -4.0))
        # Later channels pay more, so channels die from the top and the active
        # width is (nearly) a prefix that can be read off by counting.
        self.register_buffer("channel_rank_weight", 2 * torch.arange(1, channels + 1) / (channels + 1))

    # ------------------------------------------------------------------ steps
    def _check_images(self, images):
        if not isinstance(images, torch.Tensor):
            raise ContractError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.ndim != 4 or images.shape[1] != self.config.in_channels:
            raise ContractError(
                f"images must have shape (batch, {self.config.in_channels}, height, width), "
                f"got {tuple(images.shape)}"
            )
        if not torch.is_floating_point(images):
            raise ContractError(f"images must be floating point in [0, 1], got dtype {images.dtype}")

    def _encode(self, images):
        """The stem's maps as the first layer receives them (pooled when layers downsample)."""
        return _shrink(F.relu(self.stem(images)), self.config.downsample)

    def _initial_states(self, encoded):
        return _zero_states(encoded, len(self.layers), self.config.downsample)

    def halting_slope(self) -> torch.Tensor:
        """Slope of the halting logit in the readout's certainty (confidence halting only)."""
        return F.softplus(self.halting_slope_raw)

    def _advance(self, encoded, states, scales):
        """One time step of the dynamics for every layer; returns the new states."""
        new_states = []
        biological = self.config.unrolling == "biological"
        for index, layer in enumerate(self.layers):
            if index == 0:
                below = encoded
            else:
                below = _shrink(states[index - 1] if biological else new_states[index - 1], self.config.downsample)
            above = states[index + 1] if index + 1 < len(states) and layer.top_down is not None else None
            if above is not None and self.config.downsample:
                above = F.interpolate(above, size=states[index].shape[-2:], mode="nearest")
            new_states.append(layer(below, states[index], above, scales[index]))
        return new_states

    def _pool(self, states):
        """Readout features of one step: every layer pooled to a small grid, concatenated
        (or the top layer's central pixels for the "center" readout)."""
        if self.config.readout == "center":
            top = states[-1]
            height, width = top.shape[-2:]
            return top[..., (height - 1) // 2 : height // 2 + 1, (width - 1) // 2 : width // 2 + 1].mean(dim=(-2, -1))
        return torch.cat([F.adaptive_avg_pool2d(state, self.config.readout_pool).flatten(1) for state in states], dim=1)

    def _read(self, pooled, step_index):
        """Logits and conditional halting probability from pooled features.

        ``pooled`` is (..., features) and ``step_index`` an int or a tensor
        broadcastable to ``pooled.shape[:-1]``. Halting never feeds back into
        the dynamics, so training reads all steps in one batched call.
        """
        logits = self.readout(pooled)
        log_probability = F.log_softmax(logits, dim=-1)
        entropy = -(log_probability.exp() * log_probability).sum(dim=-1) / math.log(self.config.n_classes)
        if self.config.halting == "features":
            confidence = log_probability.max(dim=-1).values.exp()
            features = torch.cat([pooled, entropy[..., None], confidence[..., None]], dim=-1)
            halting_logit = self.halting_head(features).squeeze(-1)
        else:
            halting_logit = self.halting_slope() * (1 - entropy) + self.halting_step_bias[step_index]
        return logits, torch.sigmoid(halting_logit)

    def _scales(self):
        return [layer.update_scale() for layer in self.layers]

    def forward(self, images: torch.Tensor) -> dict:
        """Run all ``max_steps`` steps (the image-model contract, ``docs/your-model.md``).

        Parameters
        ----------
        images : torch.Tensor, shape (batch, in_channels, height, width)
            Float images in [0, 1].

        Returns
        -------
        dict
            ``logits`` (batch, step, class), ``halting_probability`` (batch,
            step), ``latents``: ``layer_<i>`` -> (batch, step, channel, height,
            width) states, ``cost``: the KL and resource terms of the loss (see
            :meth:`cost`); and, beyond the contract, ``halting_lambda``
            (batch, step) and ``expected_steps`` (batch,).
        """
        self._check_images(images)
        encoded = self._encode(images)
        states = self._initial_states(encoded)
        scales = self._scales()
        step_pooled, per_step_states = [], []
        for _ in range(self.config.max_steps):
            states = self._advance(encoded, states, scales)
            step_pooled.append(self._pool(states))
            per_step_states.append(states)
        steps = torch.arange(self.config.max_steps, device=images.device)
        logits, halting_lambda = self._read(torch.stack(step_pooled, dim=1), steps)
        probability = halting_distribution(halting_lambda)
        expected_steps = (probability * (steps + 1).to(probability.dtype)).sum(dim=1)
        return {
            "logits": logits,
            "halting_probability": probability,
            "latents": {f"layer_{layer}": torch.stack([step[layer] for step in per_step_states], dim=1)
                        for layer in range(len(self.layers))},
            "cost": self.cost(probability, expected_steps),
            "halting_lambda": halting_lambda,
            "expected_steps": expected_steps,
        }

    # ------------------------------------------------------------------ costs
    def depth_gates(self) -> torch.Tensor:
        """Openness of each layer's residual branch, in (0, 1); shape (layer,)."""
        return torch.sigmoid(torch.stack([layer.depth_logit for layer in self.layers]))

    def channel_gates(self) -> torch.Tensor:
        """Channel gates per layer; shape (layer, channel)."""
        return torch.stack([layer.channel_gate for layer in self.layers])

    def breadth_cost(self) -> torch.Tensor:
        """Rank-weighted L1 of the channel gates, averaged over layers and channels."""
        return (self.channel_gates().abs() * self.channel_rank_weight).mean()

    def depth_cost(self) -> torch.Tensor:
        """Expected number of open layers (sum of depth gates)."""
        return self.depth_gates().sum()

    def cost_terms(self, probability: torch.Tensor, expected_steps: torch.Tensor) -> dict:
        """The unweighted terms: ``kl`` (halting distribution vs geometric prior), ``time`` (mean
        expected steps), ``breadth`` and ``depth``."""
        prior = geometric_prior(probability.shape[1], self.config.halting_prior).to(probability)
        kl = (probability * (torch.log(probability + 1e-12) - torch.log(prior))).sum(dim=1).mean()
        return {"kl": kl, "time": expected_steps.mean(), "breadth": self.breadth_cost(), "depth": self.depth_cost()}

    def cost(self, probability: torch.Tensor, expected_steps: torch.Tensor) -> torch.Tensor:
        """What the lattice adds to the task loss (PonderNet's KL term plus the three resource costs).

        ``beta_kl * KL + lambda_time * E[steps] + lambda_breadth * breadth +
        lambda_depth * depth``; the trainer adds it to the cross-entropy, as it
        does any contract model's ``cost``.
        """
        terms = self.cost_terms(probability, expected_steps)
        c = self.config
        return (c.beta_kl * terms["kl"] + c.lambda_time * terms["time"] + c.lambda_breadth * terms["breadth"]
                + c.lambda_depth * terms["depth"])

    # -------------------------------------------------------------- read-offs
    @torch.no_grad()
    def resource_summary(self) -> dict:
        """What the model uses, read off its gates (the contract's optional ``resource_summary``).

        Returns
        -------
        dict
            Per layer: ``active_channels`` (channels with |gate| above
            ``gate_threshold``) and ``depth_gate`` (openness of the layer's
            residual branch). Scalars: ``effective_depth`` (sum of depth gates),
            ``open_layers`` (layers with gate above ``depth_threshold``),
            ``active_breadth`` (mean active channels over open layers, 0 when
            none is open), ``cost_breadth`` and ``cost_depth`` (the unweighted
            cost terms).
        """
        gates = self.channel_gates().abs()
        active = (gates > self.config.gate_threshold).sum(dim=1)
        depth = self.depth_gates()
        is_open = depth > self.config.depth_threshold
        active_breadth = float(active[is_open].float().mean()) if bool(is_open.any()) else 0.0
        return {
            "active_channels": [int(a) for a in active],
            "depth_gate": [float(d) for d in depth],
            "effective_depth": float(depth.sum()),
            "open_layers": int(is_open.sum()),
            "active_breadth": active_breadth,
            "cost_breadth": float(self.breadth_cost()),
            "cost_depth": float(self.depth_cost()),
        }

    @torch.no_grad()
    def early_exit(self, images: torch.Tensor, halting_mass: float = 0.5) -> dict:
        """Run each stimulus only until its halting step, then stop computing it.

        A stimulus halts at the first step where its cumulative halting
        probability reaches ``halting_mass`` (0.5 gives the median halting step);
        later steps are not computed for it.

        Returns
        -------
        dict
            ``logits`` (batch, class) at the halting step and ``halting_step``
            (batch,) as integers 1..max_steps.
        """
        self._check_images(images)
        if not 0 < halting_mass <= 1:
            raise ContractError(f"halting_mass must lie in (0, 1], got {halting_mass}")
        batch = images.shape[0]
        encoded = self._encode(images)
        states = self._initial_states(encoded)
        scales = self._scales()
        device = images.device
        running = torch.arange(batch, device=device)
        still_running_probability = torch.ones(batch, device=device)
        halted_mass = torch.zeros(batch, device=device)
        final_logits = torch.zeros(batch, self.config.n_classes, device=device)
        halting_step = torch.full((batch,), self.config.max_steps, dtype=torch.long, device=device)
        for step in range(1, self.config.max_steps + 1):
            states = self._advance(encoded, states, scales)
            logits, halting_lambda = self._read(self._pool(states), step - 1)
            if step == self.config.max_steps:
                final_logits[running] = logits
                break
            halted_mass[running] += still_running_probability[running] * halting_lambda
            still_running_probability[running] *= 1 - halting_lambda
            done = halted_mass[running] >= halting_mass
            if bool(done.any()):
                stopped = running[done]
                final_logits[stopped] = logits[done]
                halting_step[stopped] = step
                keep = ~done
                running = running[keep]
                encoded = encoded[keep]
                states = [state[keep] for state in states]
            if running.numel() == 0:
                break
        return {"logits": final_logits, "halting_step": halting_step}


class FixedStepRecurrentNet(nn.Module):
    """Plain recurrent conv net of the same size as a lattice, without gates or halting.

    A baseline (and the benchmark peer): the same stem, bottom-up, lateral
    (and top-down) convolutions and normalisation, run for ``max_steps`` steps,
    with the readout on the last step only.
    """

    def __init__(self, config: LatticeConfig, seed: int | None = None):
        super().__init__()
        self.config = config
        channels = config.max_channels
        padding = config.kernel_size // 2
        with seeded(seed):
            self.stem = nn.Conv2d(config.in_channels, channels, config.kernel_size, stride=config.stem_stride,
                                  padding=padding)
            self.bottom_up = nn.ModuleList(
                nn.Conv2d(channels, channels, config.kernel_size, padding=padding) for _ in range(config.max_layers)
            )
            self.lateral = nn.ModuleList(
                nn.Conv2d(channels, channels, config.kernel_size, padding=padding, bias=False)
                for _ in range(config.max_layers)
            )
            self.top_down = (
                nn.ModuleList(
                    nn.Conv2d(channels, channels, config.kernel_size, padding=padding, bias=False)
                    for _ in range(config.max_layers)
                )
                if config.top_down
                else None
            )
            self.norms = nn.ModuleList(nn.GroupNorm(1, channels) for _ in range(config.max_layers))
            self.readout = nn.Linear(config.max_layers * channels * config.readout_pool**2, config.n_classes)

    def forward(self, images: torch.Tensor) -> dict:
        """``logits`` of the last step as a one-step contract output, shape (batch, 1, class)."""
        downsample = self.config.downsample
        encoded = _shrink(F.relu(self.stem(images)), downsample)
        states = _zero_states(encoded, len(self.bottom_up), downsample)
        biological = self.config.unrolling == "biological"
        for _ in range(self.config.max_steps):
            new_states = []
            for index in range(len(self.bottom_up)):
                if index == 0:
                    below = encoded
                else:
                    below = _shrink(states[index - 1] if biological else new_states[index - 1], downsample)
                drive = self.bottom_up[index](below) + self.lateral[index](states[index])
                if self.top_down is not None and index + 1 < len(states):
                    above = states[index + 1]
                    if downsample:
                        above = F.interpolate(above, size=states[index].shape[-2:], mode="nearest")
                    drive = drive + self.top_down[index](above)
                state = below + F.relu(self.norms[index](drive))
                new_states.append(state)
            states = new_states
        pooled = torch.cat([F.adaptive_avg_pool2d(state, self.config.readout_pool).flatten(1) for state in states], dim=1)
        return {"logits": self.readout(pooled)[:, None]}
