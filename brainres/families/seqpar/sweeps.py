"""The pipeline's sweeps of the sequential/parallel family: bottleneck widths, and the switch of input distribution."""

from __future__ import annotations

from brainres.families.base import Variant
from brainres.families.seqpar.config import FIRST_SENT
from brainres.families.seqpar.network import SeqParError

SWITCH_OPTIONS = {"switch_epochs", "fixed_bits", "epochs", "learning_rates", "temperatures", "matched_controls"}


def _integers(options: dict, key: str, *, low: int) -> list[int]:
    values = options.get(key, [])
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= low
                                                        for v in values):
        raise SeqParError(f"{key} must be a list of integers >= {low}, got {values!r}")
    return [int(v) for v in values]


def _numbers(options: dict, key: str) -> list[float]:
    values = options.get(key, [])
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                        and v > 0 for v in values):
        raise SeqParError(f"{key} must be a list of positive numbers, got {values!r}")
    return [float(v) for v in values]


def width_variants(config, options: dict) -> list[Variant]:
    """``[model.sweep] kind = "widths"``: one variant per bottleneck width (``widths = [1, 2, 3]``), labelled ``k=<k>``."""
    unknown = sorted(set(options) - {"widths"})
    if unknown or "widths" not in options:
        raise SeqParError(f"a widths sweep takes widths (a list of bottleneck widths); got {sorted(options)}")
    widths = _integers(options, "widths", low=1)
    if not widths or len(set(widths)) != len(widths):
        raise SeqParError(f"widths must be distinct, got {widths}")
    return [Variant(label=f"k={k}", overrides={"bottleneck_width": k}, tags={"bottleneck_width": k})
            for k in sorted(widths)]


def switch_variants(config, options: dict) -> list[Variant]:
    """``[model.sweep] kind = "switch"``: train on uniform inputs, then hold some bits at 0 and train on.

    The base settings are phase 1 (task ``uniform``, a discrete bottleneck).
    Three variants, all measured under the new distribution:

    - ``before``: the phase-1 model;
    - ``after``: continues from ``before`` for ``switch_epochs`` on the new
      distribution (``fixed_bits``, default ``"first_sent"``: per seed, the
      ``bottleneck_width`` bits the phase-1 code sends at step 1), drawing its
      batches from the phase-2 seed stream (seed + 1_000_000);
    - ``control``: continues from ``before`` for ``switch_epochs`` more on uniform inputs.

    Options that vary what the switch may take, one knob at a time (the
    others at the base values), each adding an ``after`` variant:
    ``epochs`` (longer training after the switch; with ``matched_controls``,
    default true, a control of the same length too), ``learning_rates`` and
    ``temperatures`` (after the switch). Tags: ``phase``, ``knob`` (``base``,
    ``epochs``, ``learning_rate``, ``temperature``), ``switch_epochs``,
    ``learning_rate``, ``temperature``.
    """
    unknown = sorted(set(options) - SWITCH_OPTIONS)
    switch_epochs = options.get("switch_epochs")
    if unknown or not isinstance(switch_epochs, int) or isinstance(switch_epochs, bool) or switch_epochs < 1:
        raise SeqParError(f"a switch sweep needs switch_epochs (an integer >= 1) and takes "
                          f"{', '.join(sorted(SWITCH_OPTIONS - {'switch_epochs'}))}; got {options}")
    if config.task != "uniform" or config.bottleneck != "discrete":
        raise SeqParError(f"the switch starts from the uniform task with a discrete bottleneck, got task "
                          f"{config.task!r}, bottleneck {config.bottleneck!r}")
    fixed_bits = options.get("fixed_bits", FIRST_SENT)
    fixed_bits = fixed_bits if fixed_bits == FIRST_SENT else sorted(_integers(options, "fixed_bits", low=0))
    matched = options.get("matched_controls", True)
    if not isinstance(matched, bool):
        raise SeqParError(f"matched_controls must be true or false, got {matched!r}")
    base = {"switch_epochs": switch_epochs, "learning_rate": config.learning_rate, "temperature": config.temperature}

    def tags(phase, knob, **changed):
        return {"phase": phase, "knob": knob, **base, **changed}

    after = {"task": "fixed", "fixed_bits": fixed_bits, "epochs": switch_epochs}
    control = {"epochs": switch_epochs, "evaluate_fixed_bits": fixed_bits}
    variants = [
        Variant("before", {"evaluate_fixed_bits": fixed_bits}, tags("before", "base", switch_epochs=0)),
        Variant("after", after, tags("after", "base"), continue_from="before"),
        Variant("control", control, tags("control", "base"), continue_from="before"),
    ]
    for epochs in _integers(options, "epochs", low=1):
        if epochs == switch_epochs:
            continue
        variants.append(Variant(f"after epochs={epochs}", {**after, "epochs": epochs},
                                tags("after", "epochs", switch_epochs=epochs), continue_from="before"))
        if matched:
            variants.append(Variant(f"control epochs={epochs}", {**control, "epochs": epochs},
                                    tags("control", "epochs", switch_epochs=epochs), continue_from="before"))
    for rate in _numbers(options, "learning_rates"):
        if rate != config.learning_rate:
            variants.append(Variant(f"after lr={rate:g}", {**after, "learning_rate": rate},
                                    tags("after", "learning_rate", learning_rate=rate), continue_from="before"))
    for temperature in _numbers(options, "temperatures"):
        if temperature != config.temperature:
            variants.append(Variant(f"after T={temperature:g}", {**after, "temperature": temperature},
                                    tags("after", "temperature", temperature=temperature), continue_from="before"))
    return variants
