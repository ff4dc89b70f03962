"""What determines an ELM run except its seed: the ``[model.elm]`` table."""

from __future__ import annotations

import dataclasses

from brainres.families.elm.network import parameter_count as network_parameter_count
from brainres.settings import Integer, Real, Settings, SettingsError, Text, setting

_POSITIVE = Integer(low=1)
_RATE = Real(low=0, low_open=True)
_TIMESCALE = Real(low=0, low_open=True)
TASKS = ("digits-adding", "onehot-adding")


@dataclasses.dataclass(frozen=True)
class ELMConfig(Settings):
    """The resource knobs (``n_neurons``, ``k_e``, ``k_c``), the task and the training of an ELM network.

    ``task`` names a built-in task (``digits-adding``, ``onehot-adding``) or,
    in Python, the ``name`` of a user's :class:`~brainres.families.elm.tasks.SequenceTask`.
    """

    n_neurons: int = setting(16, _POSITIVE, "N: neurons in the recurrent layer")
    k_e: int = setting(4, _POSITIVE, "memory units per neuron (its MLP is mlp_width_factor x k_e wide)")
    k_c: int = setting(8, _POSITIVE, "synapses per neuron, each from one input feature or neuron")
    mlp_width_factor: int = setting(2, _POSITIVE, "hidden width of each neuron's MLP in units of k_e")
    task: str = setting("digits-adding", Text(), "digits-adding, onehot-adding, or a user task's name")
    delay: int = setting(2, Integer(low=0), "blank steps between the two digits (built-in tasks)")
    n_train: int = setting(4096, _POSITIVE, "training sequences generated (built-in tasks)")
    n_test: int = setting(512, _POSITIVE, "test sequences generated (built-in tasks)")
    data_seed: int = setting(0, Integer(low=0), "seeds the generated sequences; the same for every training seed")
    epochs: int = setting(10, _POSITIVE, "passes over the training sequences")
    batch_size: int = setting(64, _POSITIVE, "sequences per step")
    learning_rate: float = setting(5e-3, _RATE, "Adam learning rate")
    grad_clip: float = setting(1.0, _RATE, "gradients are clipped to this norm")
    tau_m_min: float = setting(1.0, _TIMESCALE, "lower bound of the learned memory timescales (steps)")
    tau_m_max: float = setting(50.0, _TIMESCALE, "upper bound of the learned memory timescales (steps)")
    tau_s_min: float = setting(1.0, _TIMESCALE, "lower bound of the learned synaptic timescales (steps)")
    tau_s_max: float = setting(20.0, _TIMESCALE, "upper bound of the learned synaptic timescales (steps)")
    memory_update_scale: float = setting(1.0, _RATE, "scale of the memory update (the paper's lambda)")

    def check_together(self) -> None:
        problems = [f"{low}/{high}: expected {low} < {high}, got {getattr(self, low)} and {getattr(self, high)}"
                    for low, high in (("tau_m_min", "tau_m_max"), ("tau_s_min", "tau_s_max"))
                    if not getattr(self, low) < getattr(self, high)]
        if problems:
            raise SettingsError(problems)

    def pressures(self, *, n_inputs: int, n_outputs: int) -> dict:
        """The resource knobs and the exact parameter count they imply on a task of this size."""
        return {"n_neurons": self.n_neurons, "k_e": self.k_e, "k_c": self.k_c,
                "parameter_count": parameter_count(self, n_inputs=n_inputs, n_outputs=n_outputs)}


def parameter_count(config: ELMConfig, *, n_inputs: int, n_outputs: int) -> int:
    """Exact trainable-parameter count ``P`` of ``config`` on a task of this size.

    ``n_inputs`` matters only through validation (``k_c`` must not exceed the
    ``n_inputs + n_neurons`` sources); synapses cost the same wherever they come from.
    """
    if config.k_c > n_inputs + config.n_neurons:
        raise SettingsError([f"k_c: {config.k_c} exceeds the {n_inputs + config.n_neurons} sources "
                             f"(n_inputs={n_inputs} + n_neurons={config.n_neurons})"])
    return network_parameter_count(n_neurons=config.n_neurons, k_e=config.k_e, k_c=config.k_c,
                                   n_outputs=n_outputs, mlp_width_factor=config.mlp_width_factor)


def describe(config: ELMConfig) -> str:
    """Methods text for one ELM configuration, from its recorded settings."""
    return (f"a recurrent layer of {config.n_neurons} ELM neurons (Spieler et al. 2023) with {config.k_e} memory "
            f"units and {config.k_c} synapses each (neuron MLPs {config.mlp_width_factor * config.k_e} wide; memory "
            f"timescales {config.tau_m_min:g}-{config.tau_m_max:g} steps, synaptic {config.tau_s_min:g}-"
            f"{config.tau_s_max:g}) and a linear readout, trained on {config.task} (delay {config.delay}, "
            f"{config.n_train} training and {config.n_test} test sequences, data seed {config.data_seed}) for "
            f"{config.epochs} epochs (Adam, learning rate {config.learning_rate:g}, batch size {config.batch_size}, "
            f"gradient norm clipped at {config.grad_clip:g})")
