"""ELM networks on a parameter budget: ``family = "elm"`` with ``[model.elm]`` (and a ``[model.sweep]``).

A recurrent layer of Expressive Leaky Memory neurons (Spieler et al. 2023) is
sized by three knobs: neurons ``N`` (``n_neurons``), memory units per neuron
``k_e`` and synapses per neuron ``k_c``; its trainable-parameter count is exact
(:func:`parameter_count`), and :func:`allocations` / :func:`budget_line` list
ways to spend one budget. The parts: ``config.py`` (settings), ``network.py``,
``tasks.py`` (the adding tasks, or a user's :class:`SequenceTask`),
``training.py`` (seeded, resumable), ``measures.py`` (the export, per-neuron SNR
and redundancy), ``budgets.py`` (allocations and the pipeline sweeps). See
``docs/elm.md``.

Examples
--------
>>> from brainres.families import elm
>>> config = elm.ELMConfig(task="onehot-adding", delay=4, n_neurons=8, k_e=2, k_c=4, epochs=15)
>>> runs = [elm.train(config, seed) for seed in (0, 1, 2)]                  # doctest: +SKIP
>>> measures = elm.measure(config, runs)                                    # doctest: +SKIP
"""

from brainres.families.base import TaskFamily
from brainres.families.elm.budgets import allocations, axis_variants, budget_line, budget_line_variants
from brainres.families.elm.config import ELMConfig, describe, parameter_count
from brainres.families.elm.measures import measure, output_snr, pairwise_redundancy
from brainres.families.elm.network import ELMNetwork
from brainres.families.elm.tasks import (
    ELMFamilyError, SequenceTask, digits_adding_task, make_task, onehot_adding_task, task_from_tensors,
)
from brainres.families.elm.training import build_model, load, train

__all__ = [
    "ELMConfig", "ELMFamilyError", "ELMNetwork", "FAMILY", "SequenceTask", "allocations", "budget_line",
    "build_model", "describe", "digits_adding_task", "load", "make_task", "measure", "onehot_adding_task",
    "output_snr", "pairwise_redundancy", "parameter_count", "task_from_tensors", "train",
]

FAMILY = TaskFamily(
    id="elm",
    description="ELM networks: neurons x memory units x synapses on a parameter budget, on adding tasks",
    config=ELMConfig,
    train=train,
    load=load,
    measure=measure,
    describe=describe,
    sweeps={"budget-line": budget_line_variants, "axis": axis_variants},
    example={"task": "onehot-adding", "n_train": 128, "n_test": 64, "epochs": 2, "n_neurons": 4, "k_e": 2, "k_c": 4},
)
