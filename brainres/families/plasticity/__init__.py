"""Grow / prune structural plasticity: ``family = "plasticity"`` with ``[model.plasticity]`` (and a ``[model.sweep]``).

A trunk (an MLP or a conv net whose hidden units are neurons or channels) is
trained on a classification stimulus set, or on a sequence of tasks made from
it (pixel-permuted or class-incremental), while a schedule inserts units (four
initialisations), removes them (by magnitude or utility) or replaces them
(continual backprop). Every unit is tracked from birth to removal, and after
each insertion the newborn/incumbent incoming-gradient ratio is recorded step
by step. The parts: ``config.py`` (settings, methods text), ``network.py``
(the trunks, per-unit views), ``structure.py`` (insert/remove/re-initialise
units, Adam's state across a change), ``data.py`` (the split, task sequences,
the batch stream), ``units.py`` (the unit book, grow/prune events, continual
backprop), ``training.py`` (seeded, resumable), ``measures.py`` (the export),
``sweeps.py`` (schedules, insertion methods, continual learning). See
``docs/plasticity.md``.

Examples
--------
>>> from brainres.families import plasticity
>>> config = plasticity.PlasticityConfig(widths=(16, 16), schedule="grow", epochs=4, first_change_step=30)
>>> runs = [plasticity.train(config, seed) for seed in (0, 1, 2)]             # doctest: +SKIP
>>> measures = plasticity.measure(config, runs)                               # doctest: +SKIP
"""

from brainres.families.base import TaskFamily
from brainres.families.plasticity.config import PlasticityConfig, describe
from brainres.families.plasticity.data import (
    BatchStream,
    PlasticityFamilyError,
    SplitData,
    TaskSequence,
    data_for,
    split_stimuli,
)
from brainres.families.plasticity.measures import measure
from brainres.families.plasticity.network import (
    ACTIVATIONS,
    PlasticConvNet,
    PlasticityError,
    PlasticMLP,
    contribution,
    incoming_gradient_norms,
    lowest_units,
    magnitude_scores,
    outgoing_weight_norms,
    unit_activation_summary,
)
from brainres.families.plasticity.structure import (
    INSERTIONS,
    OPTIMIZER_STATES,
    REMOVALS,
    adam_state_by_name,
    gradmax_directions,
    insert_units,
    merge_index_maps,
    reinitialize_units,
    remove_units,
    transplant_adam_state,
)
from brainres.families.plasticity.sweeps import (
    SWEEPS,
    continual_variants,
    insertion_variants,
    schedule_variants,
)
from brainres.families.plasticity.training import build_model, load, train

__all__ = [
    "ACTIVATIONS",
    "FAMILY",
    "INSERTIONS",
    "OPTIMIZER_STATES",
    "REMOVALS",
    "BatchStream",
    "PlasticConvNet",
    "PlasticMLP",
    "PlasticityConfig",
    "PlasticityError",
    "PlasticityFamilyError",
    "SplitData",
    "TaskSequence",
    "adam_state_by_name",
    "build_model",
    "continual_variants",
    "contribution",
    "data_for",
    "describe",
    "gradmax_directions",
    "incoming_gradient_norms",
    "insert_units",
    "insertion_variants",
    "load",
    "lowest_units",
    "magnitude_scores",
    "measure",
    "merge_index_maps",
    "outgoing_weight_norms",
    "reinitialize_units",
    "remove_units",
    "schedule_variants",
    "split_stimuli",
    "train",
    "transplant_adam_state",
    "unit_activation_summary",
]

FAMILY = TaskFamily(
    id="plasticity",
    description="grow / prune / replace hidden units during training (MLP or conv trunk), on one task or a sequence",
    config=PlasticityConfig,
    train=train,
    load=load,
    measure=measure,
    describe=describe,
    sweeps=dict(SWEEPS),
    example={"widths": [6, 6], "epochs": 2, "batch_size": 128, "schedule": "grow", "n_changes": 1,
             "units_per_change": 2, "first_change_step": 6, "ratio_window": 4, "eval_every": 5, "track_every": 5,
             "retrain": False},
)
