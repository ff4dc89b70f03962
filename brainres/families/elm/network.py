"""Recurrent layer of Expressive Leaky Memory (ELM) neurons with sparse synapses.

The ELM neuron (Spieler et al. 2023, "The ELM neuron: an efficient and
expressive cortical neuron model can solve long-horizon tasks") has three
parts; here every neuron ``i`` of a layer of ``N`` has its own copy of each:

* ``k_c`` synapses, each reading one presynaptic source (an input feature or
  the output of a neuron of the layer at the previous step), with a learned
  weight ``w_s`` and a learned decay ``kappa_s = exp(-1 / tau_s)``::

      s_t = kappa_s * s_{t-1} + w_s * x_t

* ``k_e`` memory units with learned timescales ``tau_m`` and a per-neuron MLP
  (one hidden layer of ``mlp_width_factor * k_e`` ReLU units, tanh output) that
  proposes their update from the synaptic traces and the decayed memory::

      delta_m_t = tanh(MLP([s_t, kappa_m * m_{t-1}]))
      m_t = kappa_m * m_{t-1} + scale * (1 - kappa_m) * delta_m_t

  (the memory enters the MLP scaled by its own decay ``kappa_m``, as in the
  paper's reference implementation, so this costs no parameters);
* a scalar output ``y_t = w_y . m_t``.

A linear readout maps the ``N`` neuron outputs to the task's outputs at every
step. Connectivity is real, not masked: each neuron stores the indices of its
``k_c`` sources and one weight per synapse, so absent synapses have neither a
parameter nor a gradient. The model only maps tensors to tensors.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from brainres.errors import BrainresError


class ELMConfigError(BrainresError, ValueError):
    """Sizes or timescale bounds of an ELM layer that cannot be built."""


def parameter_count(*, n_neurons: int, k_e: int, k_c: int, n_outputs: int, mlp_width_factor: int = 2) -> int:
    """Exact number of trainable parameters of :class:`ELMNetwork`.

    Per neuron: ``2 k_c`` (synaptic weight and timescale), the MLP
    ``(k_c + k_e) h + h + h k_e + k_e`` with ``h = mlp_width_factor * k_e``,
    ``k_e`` memory timescales and ``k_e`` output weights. The readout adds
    ``N n_outputs + n_outputs``.
    """
    hidden = mlp_width_factor * k_e
    synapses = 2 * k_c
    mlp = (k_c + k_e) * hidden + hidden + hidden * k_e + k_e
    memory_and_output = 2 * k_e
    per_neuron = synapses + mlp + memory_and_output
    return n_neurons * per_neuron + n_neurons * n_outputs + n_outputs


def _scaled_sigmoid(raw: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.sigmoid(raw)


def _inverse_scaled_sigmoid(value: torch.Tensor, low: float, high: float) -> torch.Tensor:
    # Keep strictly inside the bounds so the logit stays finite.
    fraction = ((value - low) / (high - low)).clamp(1e-4, 1 - 1e-4)
    return torch.log(fraction / (1 - fraction))


class ELMNetwork(nn.Module):
    """A recurrent layer of ``n_neurons`` ELM neurons and a linear readout.

    Parameters
    ----------
    n_inputs : int
        Input features per time step.
    n_outputs : int
        Readout size (classes or regression targets).
    n_neurons : int
        ``N``, neurons in the layer.
    k_e : int
        Memory units per neuron; the MLP hidden width is ``mlp_width_factor * k_e``.
    k_c : int
        Synapses per neuron, each from a distinct source among the
        ``n_inputs + n_neurons`` inputs and neuron outputs.
    mlp_width_factor : int, default 2
    tau_m_bounds, tau_s_bounds : (float, float)
        Ranges (in steps) of the memory and synaptic timescales.
    memory_update_scale : float, default 1.0
        ``scale`` in the memory update (the paper's ``lambda``).
    connectivity_seed : int, default 0
        Seeds the draw of presynaptic sources.
    init_seed : int, optional
        Seeds the initial weights (default: torch's global generator).
    """

    def __init__(
        self,
        *,
        n_inputs: int,
        n_outputs: int,
        n_neurons: int,
        k_e: int,
        k_c: int,
        mlp_width_factor: int = 2,
        tau_m_bounds: tuple[float, float] = (1.0, 50.0),
        tau_s_bounds: tuple[float, float] = (1.0, 20.0),
        memory_update_scale: float = 1.0,
        connectivity_seed: int = 0,
        init_seed: int | None = None,
    ):
        super().__init__()
        for name, value in (("n_inputs", n_inputs), ("n_outputs", n_outputs), ("n_neurons", n_neurons),
                            ("k_e", k_e), ("k_c", k_c), ("mlp_width_factor", mlp_width_factor)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ELMConfigError(f"{name} must be a positive integer, got {value!r}")
        n_sources = n_inputs + n_neurons
        if k_c > n_sources:
            raise ELMConfigError(
                f"k_c={k_c} synapses per neuron exceed the {n_sources} available sources "
                f"(n_inputs={n_inputs} + n_neurons={n_neurons})"
            )
        for name, (low, high) in (("tau_m_bounds", tau_m_bounds), ("tau_s_bounds", tau_s_bounds)):
            if not 0 < low < high:
                raise ELMConfigError(f"{name} must satisfy 0 < low < high, got {(low, high)}")
        self.n_inputs, self.n_outputs, self.n_neurons = n_inputs, n_outputs, n_neurons
        self.k_e, self.k_c, self.hidden = k_e, k_c, mlp_width_factor * k_e
        self.tau_m_bounds, self.tau_s_bounds = tuple(tau_m_bounds), tuple(tau_s_bounds)
        self.memory_update_scale = float(memory_update_scale)

        wiring = torch.Generator().manual_seed(int(connectivity_seed))
        sources = torch.stack([torch.randperm(n_sources, generator=wiring)[:k_c] for _ in range(n_neurons)])
        # Sorted per neuron so the wiring is easy to read; order has no effect.
        self.register_buffer("presynaptic_index", sources.sort(dim=1).values)

        init = torch.Generator().manual_seed(int(init_seed)) if init_seed is not None else None

        def uniform(shape, bound):
            return nn.Parameter((torch.rand(shape, generator=init) * 2 - 1) * bound)

        hidden = self.hidden
        self.synapse_weight = uniform((n_neurons, k_c), 1.0)
        log_tau_s = torch.empty(n_neurons, k_c).uniform_(
            math.log(tau_s_bounds[0]), math.log(tau_s_bounds[1]), generator=init)
        self.synapse_tau_raw = nn.Parameter(_inverse_scaled_sigmoid(log_tau_s.exp(), *tau_s_bounds))
        fan_in = k_c + k_e
        self.mlp_in_weight = uniform((n_neurons, fan_in, hidden), 1 / math.sqrt(fan_in))
        self.mlp_in_bias = uniform((n_neurons, hidden), 1 / math.sqrt(fan_in))
        self.mlp_out_weight = uniform((n_neurons, hidden, k_e), 1 / math.sqrt(hidden))
        self.mlp_out_bias = uniform((n_neurons, k_e), 1 / math.sqrt(hidden))
        # Memory timescales start log-spaced over the allowed range, as in the paper.
        tau_m = torch.logspace(math.log10(tau_m_bounds[0]), math.log10(tau_m_bounds[1]), k_e)
        self.memory_tau_raw = nn.Parameter(
            _inverse_scaled_sigmoid(tau_m, *tau_m_bounds).expand(n_neurons, k_e).clone())
        self.output_weight = uniform((n_neurons, k_e), 1 / math.sqrt(k_e))
        self.readout = nn.Linear(n_neurons, n_outputs)
        with torch.no_grad():
            bound = 1 / math.sqrt(n_neurons)
            self.readout.weight.copy_((torch.rand(n_outputs, n_neurons, generator=init) * 2 - 1) * bound)
            self.readout.bias.copy_((torch.rand(n_outputs, generator=init) * 2 - 1) * bound)

    @property
    def tau_m(self) -> torch.Tensor:
        """Memory timescales ``(N, k_e)`` in steps."""
        return _scaled_sigmoid(self.memory_tau_raw, *self.tau_m_bounds)

    @property
    def tau_s(self) -> torch.Tensor:
        """Synaptic timescales ``(N, k_c)`` in steps."""
        return _scaled_sigmoid(self.synapse_tau_raw, *self.tau_s_bounds)

    def connectivity(self) -> torch.Tensor:
        """Boolean ``(N, n_inputs + N)``: True where neuron ``i`` has a synapse from source ``j``.

        Sources ``0 .. n_inputs-1`` are input features, the rest are the
        neurons' outputs at the previous step.
        """
        dense = torch.zeros(self.n_neurons, self.n_inputs + self.n_neurons, dtype=torch.bool)
        dense.scatter_(1, self.presynaptic_index, True)
        return dense

    def forward(self, inputs: torch.Tensor, *, return_memory: bool = False) -> dict[str, torch.Tensor]:
        """Run the layer over a batch of sequences.

        Parameters
        ----------
        inputs : torch.Tensor
            ``(batch, time, n_inputs)``.
        return_memory : bool
            Also return the memory states ``(batch, time, N, k_e)``.

        Returns
        -------
        dict
            ``logits`` ``(batch, time, n_outputs)`` (the readout at every step)
            and ``neuron_output`` ``(batch, time, N)``; ``memory`` on request.
        """
        if inputs.ndim != 3 or inputs.shape[-1] != self.n_inputs:
            raise ELMConfigError(
                f"inputs must have shape (batch, time, {self.n_inputs}), got {tuple(inputs.shape)}")
        batch, n_steps, _ = inputs.shape
        kappa_s = torch.exp(-1.0 / self.tau_s)
        kappa_m = torch.exp(-1.0 / self.tau_m)
        flat_index = self.presynaptic_index.reshape(-1)
        synapse = inputs.new_zeros(batch, self.n_neurons, self.k_c)
        memory = inputs.new_zeros(batch, self.n_neurons, self.k_e)
        output = inputs.new_zeros(batch, self.n_neurons)
        outputs, memories = [], []
        for step in range(n_steps):
            sources = torch.cat([inputs[:, step], output], dim=1)
            presynaptic = sources.index_select(1, flat_index).view(batch, self.n_neurons, self.k_c)
            synapse = kappa_s * synapse + self.synapse_weight * presynaptic
            mlp_input = torch.cat([synapse, kappa_m * memory], dim=2)
            hidden = torch.relu(torch.einsum("bni,nih->bnh", mlp_input, self.mlp_in_weight) + self.mlp_in_bias)
            proposal = torch.tanh(torch.einsum("bnh,nhk->bnk", hidden, self.mlp_out_weight) + self.mlp_out_bias)
            memory = kappa_m * memory + self.memory_update_scale * (1 - kappa_m) * proposal
            output = (memory * self.output_weight).sum(dim=2)
            outputs.append(output)
            if return_memory:
                memories.append(memory)
        neuron_output = torch.stack(outputs, dim=1)
        result = {"logits": self.readout(neuron_output), "neuron_output": neuron_output}
        if return_memory:
            result["memory"] = torch.stack(memories, dim=1)
        return result
