"""Exact information of deterministic codes, and the indices computed from it.

Evaluation codes are deterministic functions of the input, so the codes of steps
``1..t`` split the enumerated inputs into cells and ``I(X; C_1..t) = H(C_1..t)``,
the entropy of that partition under the input distribution. Everything here
is a pure function of numpy arrays.
"""

from __future__ import annotations

import math

import numpy as np

from brainres.families.seqpar.network import SeqParError, all_binary_vectors


def stimulus_ids(input_dim: int) -> list[str]:
    """Ids ``binary-D<D>-<index>`` of all inputs; the index is the vector read as a binary number."""
    width = len(str(2**input_dim - 1))
    return [f"binary-D{input_dim}-{i:0{max(width, 4)}d}" for i in range(2**input_dim)]


def input_probabilities(input_dim: int, fixed_bits=()) -> np.ndarray:
    """Probability of each of the ``2**D`` inputs when the bits at ``fixed_bits`` are held at 0 (uniform otherwise)."""
    inputs = all_binary_vectors(input_dim).numpy()
    allowed = np.ones(len(inputs), dtype=bool)
    for bit in fixed_bits:
        allowed &= inputs[:, bit] == 0
    return allowed / allowed.sum()


def _labels(*columns: np.ndarray) -> np.ndarray:
    """One integer label per row for the joint value of the given integer columns."""
    stacked = np.concatenate([np.asarray(c).reshape(len(c), -1) for c in columns], axis=1)
    if stacked.shape[1] == 0:
        return np.zeros(len(stacked), dtype=np.int64)
    return np.unique(stacked, axis=0, return_inverse=True)[1].reshape(-1)


def partition_entropy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Entropy in bits of the partition ``labels`` induces on inputs of the given probabilities.

    For a deterministic code ``C = f(X)`` this is ``I(X; C)``.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(n_inputs,)`` integer cell of each input, or ``(n_inputs, m)`` integer
        rows (equal rows share a cell).
    probabilities : numpy.ndarray
        ``(n_inputs,)`` non-negative, summing to one.
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=float)
    if len(labels) != len(probabilities):
        raise SeqParError(f"labels has {len(labels)} rows but probabilities has {len(probabilities)}")
    if (probabilities < 0).any() or not math.isclose(probabilities.sum(), 1.0, abs_tol=1e-9):
        raise SeqParError("probabilities must be non-negative and sum to 1")
    cells = _labels(labels)
    mass = np.bincount(cells, weights=probabilities)
    mass = mass[mass > 0]
    return float(-(mass * np.log2(mass)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def information_measures(codes: np.ndarray, inputs: np.ndarray, probabilities: np.ndarray) -> dict:
    """Exact information carried by deterministic discrete codes, by enumerating every input.

    Parameters
    ----------
    codes : numpy.ndarray
        ``(n_inputs, n_steps, width)`` codes (any values; equal values are the same symbol).
    inputs : numpy.ndarray
        ``(n_inputs, input_dim)`` 0/1 inputs.
    probabilities : numpy.ndarray
        ``(n_inputs,)`` input distribution.

    Returns
    -------
    dict of numpy.ndarray
        ``pointwise_bits`` ``(n_inputs, n_steps)``: ``-log2 P(C_1..t = c_1..t(x))``,
        the pointwise information of each input (NaN where ``p(x) = 0``);
        ``transmitted_bits`` ``(n_steps,)``: ``I(X; C_1..t)``, its mean under ``p``;
        ``bit_information`` ``(n_steps, input_dim)``: ``I(X_j; C_1..t)``;
        ``unit_bit_information`` ``(n_steps, width, input_dim)``:
        ``I(X_j; C_t,u | C_1..t-1)``, what unit ``u`` adds about input bit ``j``
        at step ``t`` given the earlier codes.
    """
    codes = np.asarray(codes)
    inputs = np.asarray(inputs).astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=float)
    n_inputs, n_steps, width = codes.shape
    symbols = _labels(codes.reshape(n_inputs * n_steps, width)).reshape(n_inputs, n_steps)
    pointwise = np.full((n_inputs, n_steps), np.nan)
    transmitted = np.zeros(n_steps)
    bit_information = np.zeros((n_steps, inputs.shape[1]))
    unit_information = np.zeros((n_steps, width, inputs.shape[1]))
    bit_entropy = [partition_entropy(inputs[:, j], probabilities) for j in range(inputs.shape[1])]
    # Units are compared by value, so give each unit its own integer symbols.
    unit_symbols = np.stack([_labels(codes[:, :, u].reshape(-1, 1)).reshape(n_inputs, n_steps) for u in range(width)], -1)
    past = np.zeros(n_inputs, dtype=np.int64)  # the cell of C_1..t-1
    supported = probabilities > 0
    for t in range(n_steps):
        now = _labels(past, symbols[:, t])
        mass = np.bincount(now, weights=probabilities)
        pointwise[supported, t] = -np.log2(mass[now[supported]])
        transmitted[t] = partition_entropy(now, probabilities)
        for j in range(inputs.shape[1]):
            bit_information[t, j] = bit_entropy[j] + transmitted[t] - partition_entropy(
                _labels(now, inputs[:, j]), probabilities
            )
            past_with_bit = partition_entropy(_labels(past, inputs[:, j]), probabilities)
            past_only = partition_entropy(past, probabilities)
            for u in range(width):
                with_unit = _labels(past, unit_symbols[:, t, u])
                unit_information[t, u, j] = (
                    past_with_bit
                    + partition_entropy(with_unit, probabilities)
                    - past_only
                    - partition_entropy(_labels(with_unit, inputs[:, j]), probabilities)
                )
        past = now
    # Differences of entropies carry rounding noise of ~1e-15; information is never negative.
    return {
        "pointwise_bits": pointwise,
        "transmitted_bits": transmitted,
        "bit_information": np.clip(bit_information, 0, None) + 0.0,
        "unit_bit_information": np.clip(unit_information, 0, None) + 0.0,
    }


def sequential_parallel_index(transmitted_bits: np.ndarray) -> float:
    """Fraction of the finally transmitted information that arrives at step 1.

    ``I(X; C_1) / I(X; C_1..T)``: 1 is fully parallel, ``1/T``-ish small
    values are sequential. NaN when nothing is transmitted.
    """
    transmitted_bits = np.asarray(transmitted_bits, dtype=float)
    final = transmitted_bits[-1]
    return float(transmitted_bits[0] / final) if final > 1e-9 else math.nan


def steps_to_transmit(transmitted_bits: np.ndarray, *, target_bits: float, tolerance: float = 0.05) -> float:
    """First step (1-based) at which ``target_bits - tolerance`` bits have arrived; NaN if never."""
    reached = np.flatnonzero(np.asarray(transmitted_bits) >= target_bits - tolerance)
    return float(reached[0] + 1) if reached.size else math.nan


def arrival_steps(bit_information: np.ndarray, bit_entropy: np.ndarray, *, fraction: float = 0.9) -> np.ndarray:
    """Per input bit, the first step at which ``fraction`` of its entropy has arrived (NaN if never or if constant)."""
    arrivals = np.full(bit_information.shape[1], np.nan)
    for j in range(bit_information.shape[1]):
        if bit_entropy[j] <= 1e-12:
            continue
        reached = np.flatnonzero(bit_information[:, j] >= fraction * bit_entropy[j])
        if reached.size:
            arrivals[j] = reached[0] + 1
    return arrivals


def first_sent_bits(bit_information: np.ndarray, n_bits: int) -> tuple[int, ...]:
    """The ``n_bits`` input positions with the most information at step 1 (ties: lower position first)."""
    order = np.lexsort((np.arange(bit_information.shape[1]), -np.round(bit_information[0], 9)))
    return tuple(sorted(int(j) for j in order[:n_bits]))


def curve_measures(information: np.ndarray, *, target_bits: float, width: int) -> dict:
    """When the information arrived, from one information curve ``I(X; C_1..t)``, t = 1..T.

    Returns ``sequential_parallel_index``; ``steps_to_transmit`` (first step
    within 0.05 bits of ``target_bits``, NaN if never); ``bits_per_step``
    (bits at that step divided by the step); ``area_efficiency`` (area under
    the curve over the area under the channel limit ``min(k t, H(X))``);
    ``parallel_limit`` (``min(k, H) / H``: the index of a code sending ``k``
    new bits a step).
    """
    information = np.asarray(information, dtype=float)
    steps = len(information)
    reached = steps_to_transmit(information, target_bits=target_bits)
    # Efficiency against the channel's limit: at most k bits a step, at most H(X) in all.
    limit = np.minimum(width * np.arange(1, steps + 1), target_bits)
    return {
        "sequential_parallel_index": sequential_parallel_index(information),
        "steps_to_transmit": reached,
        "bits_per_step": float(information[int(reached) - 1] / reached) if np.isfinite(reached) else math.nan,
        "area_efficiency": float(information.sum() / limit.sum()),
        "parallel_limit": min(width, target_bits) / target_bits,
    }
