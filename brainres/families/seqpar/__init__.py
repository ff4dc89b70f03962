"""Sequential/parallel bottleneck autoencoders: ``family = "seqpar"`` with ``[model.seqpar]`` (and a ``[model.sweep]``).

The task: reconstruct a static binary vector of length ``D`` (all ``2**D``
vectors, uniformly distributed, or with some bits held at 0) from codes sent
through a bottleneck of ``k`` units over ``n_steps`` steps. Because the inputs
are enumerable and the measured codes deterministic, the information the codes
carry is exact: ``I(X; C_1..t) = H(C_1..t)``, the entropy of the partition of
the inputs that the codes so far induce. The parts: ``config.py`` (settings),
``network.py`` (the autoencoder), ``information.py`` (exact information and
the indices), ``training.py`` (seeded, resumable, continuable from a parent
run), ``measures.py`` (the export), ``sweeps.py`` (``widths`` and ``switch``).
The headlines are the comparisons ``seqpar-widths`` and ``seqpar-switch``;
see ``docs/seqpar.md``.

Examples
--------
>>> from brainres.families import seqpar
>>> config = seqpar.SeqParConfig(input_dim=6, bottleneck_width=2, n_steps=6, epochs=500)
>>> runs = [seqpar.train(config, seed) for seed in (0, 1, 2)]                      # doctest: +SKIP
>>> measures = seqpar.measure(config, runs)                                         # doctest: +SKIP
>>> after = config.replace(task="fixed", fixed_bits="first_sent", epochs=500)
>>> switched = seqpar.train(after, 0, parent=runs[0])                              # doctest: +SKIP
"""

from brainres.families.base import TaskFamily
from brainres.families.seqpar.config import FIRST_SENT, SeqParConfig, describe
from brainres.families.seqpar.information import (
    arrival_steps, curve_measures, first_sent_bits, information_measures, input_probabilities, partition_entropy,
    sequential_parallel_index, steps_to_transmit, stimulus_ids,
)
from brainres.families.seqpar.measures import evaluate, first_sent_of, measure
from brainres.families.seqpar.network import (
    SeqParAutoencoder, SeqParError, all_binary_vectors, reconstruction_loss, straight_through_binary,
)
from brainres.families.seqpar.sweeps import switch_variants, width_variants
from brainres.families.seqpar.training import build_model, load, train

__all__ = [
    "FAMILY", "FIRST_SENT", "SeqParAutoencoder", "SeqParConfig", "SeqParError", "all_binary_vectors",
    "arrival_steps", "build_model", "curve_measures", "describe", "evaluate", "first_sent_bits", "first_sent_of",
    "information_measures", "input_probabilities", "load", "measure", "partition_entropy", "reconstruction_loss",
    "sequential_parallel_index", "steps_to_transmit", "stimulus_ids", "straight_through_binary", "switch_variants",
    "train", "width_variants",
]

FAMILY = TaskFamily(
    id="seqpar",
    description="sequential/parallel bottleneck autoencoders: k units x n steps, exact information of the codes",
    config=SeqParConfig,
    train=train,
    load=load,
    measure=measure,
    describe=describe,
    sweeps={"widths": width_variants, "switch": switch_variants},
    example={"input_dim": 3, "bottleneck_width": 1, "n_steps": 3, "hidden_size": 16, "epochs": 3, "batch_size": 4},
)
