"""What determines a sequential/parallel run except its seed (and its parent): the ``[model.seqpar]`` table."""

from __future__ import annotations

import dataclasses

from brainres.families.seqpar.network import BOTTLENECKS, FEEDBACK_SIGNALS
from brainres.settings import (
    Boolean, Choice, Integer, Optional, Real, Rule, Sequence, Settings, SettingsError, setting,
)

TASKS = ("uniform", "fixed")
FIRST_SENT = "first_sent"
_POSITIVE = Integer(low=1)


@dataclasses.dataclass(frozen=True)
class BitPositions(Rule):
    """A list of distinct input positions, or ``"first_sent"`` (resolved per seed when the run starts)."""

    def check(self, value):
        if value == FIRST_SENT:
            return value
        try:
            return Sequence(Integer(low=0), unique=True, non_empty=False).check(value)
        except ValueError as err:
            raise ValueError(f"expected {self.describe()}: {err}") from None

    def describe(self) -> str:
        return f"a list of distinct input positions (integers >= 0) or {FIRST_SENT!r}"


@dataclasses.dataclass(frozen=True)
class SeqParConfig(Settings):
    """The input, the channel (``bottleneck_width``, ``n_steps``, ``noise_std``), the task and the training.

    ``fixed_bits = "first_sent"`` (task ``"fixed"``) holds at 0 the
    ``bottleneck_width`` bits that the phase-1 code sent first: it is resolved,
    per seed, from the parent run a variant continues from (the switch of
    input distribution). ``evaluate_fixed_bits`` measures a run under another
    distribution than it trained on (``"first_sent"``: the same bits, from the
    parent, or from the run's own code when it has no parent).
    """

    input_dim: int = setting(6, Integer(low=1, high=12), "D: length of the binary inputs (all 2**D are enumerated)")
    bottleneck_width: int = setting(2, _POSITIVE, "k: bottleneck units at every step (resource knob)")
    n_steps: int = setting(6, _POSITIVE, "steps the input is held, one code per step (resource knob)")
    bottleneck: str = setting("discrete", Choice(*BOTTLENECKS),
                              "binary straight-through Gumbel units, or tanh units with Gaussian noise")
    noise_std: float = setting(0.5, Real(low=0), "channel noise of continuous codes (resource knob; ignored if discrete)")
    feedback: bool = setting(True, Boolean(), "feed the decoder back to the encoder (false: zeros instead)")
    feedback_signal: str = setting("residual", Choice(*FEEDBACK_SIGNALS),
                                   "what is fed back: input minus reconstruction, reconstruction, or decoder state")
    temperature: float = setting(1.0, Real(low=0, low_open=True), "relaxation temperature of the Gumbel samples")
    hidden_size: int = setting(64, _POSITIVE, "encoder hidden layer and decoder GRU state size")
    task: str = setting("uniform", Choice(*TASKS), "inputs uniform over all 2**D vectors, or with fixed_bits held at 0")
    fixed_bits: tuple = setting((), BitPositions(), "positions held at 0 by task 'fixed', or 'first_sent' (from the parent)")
    evaluate_fixed_bits: object = setting(None, Optional(BitPositions()),
                                          "measure with these bits held at 0 instead ('first_sent', a list); none: as trained")
    epochs: int = setting(600, Integer(low=0), "passes over the inputs of the task's support")
    batch_size: int = setting(16, _POSITIVE, "inputs per step")
    learning_rate: float = setting(3e-3, Real(low=0, low_open=True), "Adam learning rate")

    def check_together(self) -> None:
        problems = []
        for name in ("fixed_bits", "evaluate_fixed_bits"):
            bits = getattr(self, name)
            if isinstance(bits, tuple):
                bad = [b for b in bits if b >= self.input_dim]
                if bad:
                    problems.append(f"{name}: positions {bad} are outside 0..{self.input_dim - 1}")
                if len(bits) >= self.input_dim:
                    problems.append(f"{name}: must leave at least one input bit free, got {list(bits)}")
        if self.task == "fixed" and not self.fixed_bits:
            problems.append("fixed_bits: task 'fixed' needs at least one position (or 'first_sent')")
        if self.task == "uniform" and self.fixed_bits:
            problems.append(f"fixed_bits: task 'uniform' takes no fixed_bits, got {self.fixed_bits!r}")
        if FIRST_SENT in (self.fixed_bits, self.evaluate_fixed_bits) and self.bottleneck_width >= self.input_dim:
            problems.append(f"fixed_bits: 'first_sent' holds bottleneck_width = {self.bottleneck_width} bits at 0, "
                            f"which leaves none of the {self.input_dim} free")
        if problems:
            raise SettingsError(problems)

    def pressures(self) -> dict:
        """The resource knobs, as stored in the ``pressures`` attribute of an export."""
        pressures = {"bottleneck_width": self.bottleneck_width, "n_steps": self.n_steps, "feedback": self.feedback}
        if self.bottleneck == "continuous":
            pressures["noise_std"] = self.noise_std
        return pressures

    def task_name(self, fixed_bits=None) -> str:
        """Name of the training distribution, e.g. ``binary-D8-uniform`` or ``binary-D8-fixed-0-1``.

        ``fixed_bits`` names resolved positions (for ``fixed_bits = "first_sent"``).
        """
        bits = self.fixed_bits if fixed_bits is None else fixed_bits
        return distribution_name(self.input_dim, bits if self.task == "fixed" else ())


def distribution_name(input_dim: int, fixed_bits) -> str:
    """``binary-D<D>-uniform``, or ``binary-D<D>-fixed-<positions>`` (``first_sent`` when unresolved)."""
    if not fixed_bits:
        return f"binary-D{input_dim}-uniform"
    if fixed_bits == FIRST_SENT:
        return f"binary-D{input_dim}-fixed-{FIRST_SENT}"
    return f"binary-D{input_dim}-fixed-" + "-".join(str(b) for b in fixed_bits)


def describe(config: SeqParConfig) -> str:
    """Methods text for one configuration, from its recorded settings."""
    if config.bottleneck == "discrete":
        channel = (f"{config.bottleneck_width} binary units (straight-through Gumbel samples at temperature "
                   f"{config.temperature:g} in training, the sign of the logit when measured)")
    else:
        channel = f"{config.bottleneck_width} tanh units with Gaussian noise (s.d. {config.noise_std:g})"
    feedback = (f"{config.feedback_signal} feedback from the decoder to the encoder" if config.feedback
                else "no feedback (the encoder sees zeros in its place)")
    if config.task == "uniform":
        task = f"all {2 ** config.input_dim} binary vectors of length {config.input_dim}, uniformly"
    elif config.fixed_bits == FIRST_SENT:
        task = (f"the binary vectors of length {config.input_dim} with the {config.bottleneck_width} bits the parent "
                "run's code sent at step 1 held at 0 (per seed), continuing from the parent's trained model with a "
                "fresh optimiser and a separate seed stream")
    else:
        task = f"the binary vectors of length {config.input_dim} with bits {list(config.fixed_bits)} held at 0"
    text = (f"an autoencoder that sends a static binary input of {config.input_dim} bits through a bottleneck of "
            f"{channel} for {config.n_steps} steps (encoder MLP and GRU decoder of {config.hidden_size} units, "
            f"{feedback}), trained to reconstruct it after every step (cross-entropy in bits averaged over steps) "
            f"on {task} for {config.epochs} epochs (Adam, learning rate {config.learning_rate:g}, batch size "
            f"{config.batch_size})")
    if config.evaluate_fixed_bits is not None:
        bits = ("the bits the phase-1 code sent first (per seed)" if config.evaluate_fixed_bits == FIRST_SENT
                else f"bits {list(config.evaluate_fixed_bits)}")
        text += f", and measured with {bits} held at 0"
    return text
