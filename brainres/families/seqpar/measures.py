"""What trained sequential/parallel autoencoders send, step by step, as a ``model_measures`` dataset."""

from __future__ import annotations

import math

import numpy as np
import torch
import xarray as xr

import brainres
from brainres.data.schema import validate
from brainres.families.seqpar.config import FIRST_SENT, distribution_name
from brainres.families.seqpar.information import (
    arrival_steps, curve_measures, first_sent_bits, information_measures, input_probabilities, partition_entropy,
    stimulus_ids,
)
from brainres.families.base import runs_to_measure
from brainres.families.seqpar.network import SeqParAutoencoder, SeqParError, all_binary_vectors

FAMILY = "seqpar"
N_NOISE_SAMPLES = 32


def evaluate(model: SeqParAutoencoder, fixed_bits=(), *, evaluation_seed: int = 0,
             n_noise_samples: int = N_NOISE_SAMPLES) -> dict:
    """Codes, reconstructions and information of one model on all ``2**D`` inputs.

    ``fixed_bits`` gives the input distribution (those bits held at 0, the
    others uniform). Discrete codes are deterministic here (sign of the logit)
    and their information is exact. Continuous codes carry channel noise by
    design, so the decoded information is averaged over ``n_noise_samples``
    noise draws seeded by ``evaluation_seed``; the exported latent is the
    noiseless code.
    """
    inputs = all_binary_vectors(model.input_dim)
    probabilities = input_probabilities(model.input_dim, fixed_bits)
    log2_probability = np.where(probabilities > 0, np.log2(np.where(probabilities > 0, probabilities, 1)), np.nan)
    model.eval()
    with torch.no_grad():
        clean = model(inputs, stochastic=False)
        if model.bottleneck == "discrete":
            runs = [clean]
        else:
            generator = torch.Generator().manual_seed(int(evaluation_seed))
            runs = [model(inputs, stochastic=True, generator=generator) for _ in range(n_noise_samples)]
        targets = inputs.unsqueeze(1)
        cross_entropy = torch.stack([
            torch.nn.functional.binary_cross_entropy_with_logits(
                run["reconstruction_logits"], targets.expand_as(run["reconstruction_logits"]), reduction="none"
            ).sum(-1) / math.log(2)
            for run in runs
        ]).mean(0).numpy()
        wrong = torch.stack([
            ((run["reconstruction_logits"] > 0).float() != targets).float().mean(-1) for run in runs
        ]).mean(0).numpy()
    codes = clean["codes"].numpy()
    # Barber-Agakov bound: I(X; C_1..t) >= H(X) - E[-log2 q(x | c_1..t)], pointwise -log2 p(x) - CE.
    decoded = -log2_probability[:, None] - cross_entropy
    result = {
        "inputs": inputs.numpy(),
        "probabilities": probabilities,
        "codes": codes,
        "reconstruction_error": wrong,
        "reconstruction_cross_entropy": cross_entropy,
        "decoded_bits": decoded,
        "decoded_transmitted_bits": np.nansum(decoded * probabilities[:, None], axis=0),
    }
    if model.bottleneck == "discrete":
        result.update(information_measures(codes, result["inputs"], probabilities))
    return result


def first_sent_of(run) -> tuple[int, ...]:
    """The bits its lineage's phase-1 code sends first: recorded for a continued run, else from the run's own code.

    The ``bottleneck_width`` input positions with the most information at
    step 1, under the distribution the run trained on.
    """
    recorded = run.extras.get("switch_bits")
    if recorded is not None:
        return tuple(int(b) for b in recorded)
    if run.model.bottleneck != "discrete":
        raise SeqParError("'first_sent' bits are read from exact information, which needs a discrete bottleneck")
    information = evaluate(run.model, run.extras.get("fixed_bits", ()))["bit_information"]
    return first_sent_bits(information, run.model.bottleneck_width)


def evaluated_bits(config, run) -> tuple[int, ...]:
    """The bits held at 0 in the distribution a run is measured under (``evaluate_fixed_bits``, else as trained)."""
    if config.evaluate_fixed_bits is None:
        return tuple(run.extras.get("fixed_bits", ()))
    if config.evaluate_fixed_bits == FIRST_SENT:
        return first_sent_of(run)
    return tuple(config.evaluate_fixed_bits)


def _per_seed(result: dict, width: int, discrete: bool) -> dict:
    """Indices of one seed: when its information arrived, and when each free bit did."""
    probabilities, inputs = result["probabilities"], result["inputs"]
    information = result["transmitted_bits"] if discrete else np.clip(result["decoded_transmitted_bits"], 0, None)
    target = partition_entropy(np.arange(len(inputs)), probabilities)  # H(X)
    row = {"information": information, "target_bits": target,
           **curve_measures(information, target_bits=target, width=width)}
    if discrete:
        bit_entropy = np.array([partition_entropy(inputs[:, j], probabilities) for j in range(inputs.shape[1])])
        arrivals = arrival_steps(result["bit_information"], bit_entropy)
        row["arrival_step"] = arrivals
        row["mean_arrival_step"] = float(np.nanmean(arrivals)) if np.isfinite(arrivals).any() else math.nan
    return row


def measure(config, runs, *, evaluation_seed: int = 0) -> xr.Dataset:
    """The codes of trained runs (one per seed) of one configuration, as a validated ``model_measures`` dataset.

    Parameters
    ----------
    config : SeqParConfig
    runs : sequence of TaskRun
        Results of :func:`train` (or :func:`load`) for ``config``, one per seed.
    evaluation_seed : int
        Seeds the channel noise when measuring continuous codes.

    Returns
    -------
    xarray.Dataset
        Dims ``seed``, ``stimulus_id``, ``step``, ``unit``, ``input_bit``
        (and ``epoch`` for the training log); variables in ``docs/seqpar.md``.
        Each seed is measured under its own distribution when the evaluated
        bits are resolved per seed (``first_sent``).
    """
    runs = runs_to_measure(config, runs, SeqParError)
    bits = [evaluated_bits(config, run) for run in runs]
    results = [evaluate(run.model, b, evaluation_seed=evaluation_seed) for run, b in zip(runs, bits)]
    discrete = config.bottleneck == "discrete"
    rows = [_per_seed(r, config.bottleneck_width, discrete) for r in results]
    return _to_dataset(config, runs, bits, results, rows, discrete, evaluation_seed)


def _names(input_dim: int, per_seed_bits: list) -> str:
    names = [distribution_name(input_dim, b) for b in per_seed_bits]
    return names[0] if len(set(names)) == 1 else "per seed: " + "; ".join(names)


def _to_dataset(config, runs, bits, results, rows, discrete, evaluation_seed) -> xr.Dataset:
    stack = lambda key, source=results: np.stack([r[key] for r in source])  # noqa: E731
    seeds = np.array([run.seed for run in runs], dtype=np.int64)
    sample_dims = ("seed", "stimulus_id", "step")
    fixed = np.zeros((len(runs), config.input_dim), dtype=np.int8)
    for index, held in enumerate(bits):
        fixed[index, list(held)] = 1
    epochs = [len(run.log) for run in runs]
    data = {
        "latent_code": (("seed", "stimulus_id", "step", "unit"), stack("codes").astype(np.float32)),
        "reconstruction_error": (sample_dims, stack("reconstruction_error")),
        "reconstruction_cross_entropy": (sample_dims, stack("reconstruction_cross_entropy")),
        "decoded_bits": (sample_dims, stack("decoded_bits")),
        "transmitted_bits": (("seed", "step"), stack("information", rows)),
        "final_loss_bits": (("seed",), np.array([float(run.log["loss_bits"].iloc[-1]) if len(run.log) else math.nan
                                                for run in runs])),
        "input": (("stimulus_id", "input_bit"), results[0]["inputs"].astype(np.int8)),
        "input_probability": (("seed", "stimulus_id"), stack("probabilities")),
        "fixed_bit": (("seed", "input_bit"), fixed),
    }
    for name in ("target_bits", "sequential_parallel_index", "steps_to_transmit", "bits_per_step", "area_efficiency",
                 "parallel_limit"):
        data[name] = (("seed",), np.array([row[name] for row in rows], dtype=float))
    if discrete:
        data["information_bits"] = (sample_dims, stack("pointwise_bits"))
        data["bit_information"] = (("seed", "step", "input_bit"), stack("bit_information"))
        data["unit_bit_information"] = (("seed", "step", "unit", "input_bit"), stack("unit_bit_information"))
        data["arrival_step"] = (("seed", "input_bit"), stack("arrival_step", rows))
        data["mean_arrival_step"] = (("seed",), np.array([row["mean_arrival_step"] for row in rows]))
    coords = {
        "seed": seeds,
        "stimulus_id": np.array(stimulus_ids(config.input_dim), dtype=str),
        "step": np.arange(1, config.n_steps + 1, dtype=np.int64),
        "unit": np.arange(config.bottleneck_width, dtype=np.int64),
        "input_bit": np.arange(config.input_dim, dtype=np.int64),
    }
    if len(set(epochs)) == 1 and epochs[0] > 0:  # the log, when every seed has one of the same length
        coords["epoch"] = np.arange(1, epochs[0] + 1, dtype=np.int64)
        data["loss_bits"] = (("seed", "epoch"), np.stack([run.log["loss_bits"].to_numpy(float) for run in runs]))
        data["final_error"] = (("seed", "epoch"), np.stack([run.log["final_error"].to_numpy(float) for run in runs]))
    ds = xr.Dataset(data, coords=coords)
    ds["transmitted_bits"].attrs["units"] = "bit"
    generation = max(int(run.extras.get("generation", 0)) for run in runs)
    ds.attrs.update({
        "brainres_kind": "model_measures",
        "model_family": FAMILY,
        "pressures": config.pressures(),
        "config_hash": config.config_hash(),
        "config": config.to_dict(),
        "brainres_version": brainres.__version__,
        # The same for every variant of a sweep (combining variants keeps only shared attributes); what
        # differs between them (the distribution, the seed stream) is in training_task and the config.
        "training_data": f"binary vectors of length {config.input_dim} (distribution: attribute training_task)",
        "training_task": {"task": _names(config.input_dim, [run.extras.get("fixed_bits", ()) if config.task == "fixed"
                                                            else () for run in runs]),
                          "generator_seed": "the training seed (batch order and bottleneck noise)" if generation == 0
                          else f"the training seed + {1_000_000 * generation} (continued from the parent's model)"},
        "evaluation_data": _names(config.input_dim, bits),
        "information_method": "exact enumeration of all inputs" if discrete
        else f"decoder lower bound (Barber-Agakov), channel noise averaged over {N_NOISE_SAMPLES} draws, seed "
             f"{evaluation_seed}",
    })
    return validate(ds, "model_measures")
