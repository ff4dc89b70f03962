"""The pipeline sweeps of the plasticity family: schedules, insertion methods, continual learning.

Each turns a base configuration (the ``[model.plasticity]`` table) and the
options of a ``[model.sweep]`` table into variants. Every variant carries the
tag ``arm`` (``grow``, ``prune``, ``static``, ``continual-backprop``, or
``<trunk> <insertion>``), which becomes a coordinate along ``variant`` for the
comparisons.
"""

from __future__ import annotations

from brainres.families.base import Variant
from brainres.families.plasticity.config import TRUNKS
from brainres.families.plasticity.data import PlasticityFamilyError
from brainres.families.plasticity.structure import INSERTIONS

ARMS = ("static", "grow", "prune", "continual-backprop")


def _options(kind: str, options: dict, known: set, required: set = frozenset()) -> None:
    unknown, missing = sorted(set(options) - known), sorted(required - set(options))
    if unknown or missing:
        needs = f" (needs {', '.join(missing)})" if missing else ""
        raise PlasticityFamilyError(f"a {kind} sweep takes {', '.join(sorted(known))}{needs}; got {sorted(options)}")


def _arms(options: dict, default) -> list[str]:
    arms = list(options.get("schedules", default))
    bad = [arm for arm in arms if arm not in ARMS]
    if bad or not arms or len(set(arms)) != len(arms):
        raise PlasticityFamilyError(f"schedules must be distinct names from {list(ARMS)}, got {arms}")
    return arms


def _replacement_rate(options: dict, arms: list[str]) -> float:
    rate = options.get("replacement_rate")
    if "continual-backprop" in arms and not (isinstance(rate, (int, float)) and 0 < rate < 1):
        raise PlasticityFamilyError(f"the continual-backprop arm needs replacement_rate in (0, 1), got {rate!r}")
    return float(rate or 0.0)


def _arm_overrides(config, arm: str, n_changes: int, rate: float) -> dict:
    """Settings of one arm that ends at the base widths: grow from below, prune from above, or stay."""
    delta = n_changes * config.units_per_change
    if arm in ("grow", "prune") and (not config.change_layers or delta < 1):
        raise PlasticityFamilyError("grow and prune arms need change_layers, n_changes >= 1 and units_per_change >= 1")
    sign = {"grow": -1, "prune": 1}.get(arm, 0)
    widths = [w + sign * delta if i in config.change_layers else w for i, w in enumerate(config.widths)]
    if min(widths) < 1:
        raise PlasticityFamilyError(f"growing to widths {list(config.widths)} by {n_changes} x "
                                    f"{config.units_per_change} units would start below one unit")
    return {"widths": widths, "schedule": {"grow": "grow", "prune": "prune"}.get(arm, "none"),
            "n_changes": n_changes, "replacement_rate": rate if arm == "continual-backprop" else 0.0,
            "retrain": False}


def schedule_variants(config, options: dict) -> list[Variant]:
    """``[model.sweep] kind = "schedules"``: grow, prune and static (and continual backprop) ending at the same widths.

    The base ``widths`` are the final widths: ``grow`` starts
    ``n_changes x units_per_change`` units below them in every changed layer,
    ``prune`` as far above (the base ``removal`` criterion), ``static`` trains
    them throughout (it is also the final architecture trained from scratch,
    so no arm retrains), ``continual-backprop`` trains them with
    ``replacement_rate``. Options: ``schedules`` (default static, grow,
    prune), ``replacement_rate``.
    """
    _options("schedules", options, {"schedules", "replacement_rate"})
    arms = _arms(options, ("static", "grow", "prune"))
    rate = _replacement_rate(options, arms)
    return [Variant(label=arm, overrides=_arm_overrides(config, arm, config.n_changes, rate), tags={"arm": arm})
            for arm in arms]


def insertion_variants(config, options: dict) -> list[Variant]:
    """``[model.sweep] kind = "insertion"``: one insertion event in every trunk x insertion method.

    Options: ``trunks`` (default the base trunk), ``insertions`` (default the
    base insertion), ``widths`` (a table trunk -> widths; default the base
    widths for every trunk). Labelled ``"<trunk> <insertion>"``.
    """
    _options("insertion", options, {"trunks", "insertions", "widths"})
    trunks = list(options.get("trunks", [config.trunk]))
    insertions = list(options.get("insertions", [config.insertion]))
    widths = dict(options.get("widths", {}))
    if not trunks or any(t not in TRUNKS for t in trunks) or len(set(trunks)) != len(trunks):
        raise PlasticityFamilyError(f"trunks must be distinct names from {list(TRUNKS)}, got {trunks}")
    if not insertions or any(i not in INSERTIONS for i in insertions) or len(set(insertions)) != len(insertions):
        raise PlasticityFamilyError(f"insertions must be distinct names from {list(INSERTIONS)}, got {insertions}")
    if set(widths) - set(trunks):
        raise PlasticityFamilyError(f"widths names trunks {sorted(set(widths) - set(trunks))} that are not swept")
    return [Variant(label=f"{trunk} {insertion}",
                    overrides={"trunk": trunk, "insertion": insertion, "schedule": "grow",
                               "widths": list(widths.get(trunk, config.widths))},
                    tags={"arm": f"{trunk} {insertion}"})
            for trunk in trunks for insertion in insertions]


def continual_variants(config, options: dict) -> list[Variant]:
    """``[model.sweep] kind = "continual"``: grow, prune, continual backprop and static over a task sequence.

    The base configuration's task sequence switches every ``K =
    task_switch_every`` steps. Grow and prune change their layers once before
    each of the ``n_tasks - 1`` switches, ``I`` steps before it (the
    *integration time*: the newborns train ``I`` steps on the old task before
    the next one starts), so the events are before steps ``j K - I + 1``; all
    arms end at the base widths. Options: ``integration_times`` (each in 1..K;
    one grow and one prune variant per value), ``schedules`` (default static,
    continual-backprop, grow, prune), ``replacement_rate`` (continual
    backprop). Tags: ``arm`` and ``integration_time`` (none for static and
    continual backprop).
    """
    _options("continual", options, {"integration_times", "schedules", "replacement_rate"}, {"integration_times"})
    if config.task_sequence == "none":
        raise PlasticityFamilyError("a continual sweep needs a task_sequence (permuted or class-incremental) "
                                    "in [model.plasticity]")
    arms = _arms(options, ("static", "continual-backprop", "grow", "prune"))
    rate = _replacement_rate(options, arms)
    switch = config.task_switch_every
    times = [int(t) for t in options["integration_times"]]
    if not times or any(not 1 <= t <= switch for t in times) or len(set(times)) != len(times):
        raise PlasticityFamilyError(f"integration_times must be distinct steps in 1..{switch} (task_switch_every), "
                                    f"got {options['integration_times']}")
    n_changes = config.n_tasks - 1
    variants = []
    for arm in arms:
        if arm in ("static", "continual-backprop"):
            variants.append(Variant(label=arm, overrides=_arm_overrides(config, arm, n_changes, rate),
                                    tags={"arm": arm, "integration_time": None}))
            continue
        for time in sorted(times):
            overrides = {**_arm_overrides(config, arm, n_changes, rate), "first_change_step": switch - time + 1,
                         "change_interval": switch}
            variants.append(Variant(label=f"{arm} I={time}", overrides=overrides,
                                    tags={"arm": arm, "integration_time": time}))
    return variants


SWEEPS = {"schedules": schedule_variants, "insertion": insertion_variants, "continual": continual_variants}
