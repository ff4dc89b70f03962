"""``grow-prune-continual``: does growing become competitive in continual learning when newborns have time to integrate?

The model is a plasticity ``continual`` sweep (``[model.sweep] kind =
"continual"``): a task sequence (pixel-permuted or class-incremental tasks,
switching every ``K`` steps), trained by a static network, by continual
backprop (units replaced at ``replacement_rate``), and by grow and prune
schedules that change the network ``I`` steps before each task switch, for
several integration times ``I``. All arms end at the same widths.

Accuracy is held-out accuracy averaged over the tasks seen so far: at the end
of training (``final_accuracy``) and averaged over the evaluations during
training (``trajectory_accuracy``). Reported over training seeds (Student t):
every variant's measures; per integration time, grow and prune against each
other and against continual backprop and static; the integration effect
(each of grow and prune at the longest minus the shortest ``I``); all
differences paired over seeds and Holm-adjusted as one family. The verdict:
grow is *competitive* at an ``I`` when no other arm is shown better than it on
the first measure (every paired interval of grow minus that arm reaches 0);
the headline is shown when grow is competitive at the longest ``I``, not at
the shortest, and the integration effect of grow lies above 0.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from brainres.comparisons._common import CI_LEVEL, ComparisonError, fmt
from brainres.comparisons._plasticity import banded_lines, coordinate, require, summary
from brainres.comparisons.plasticity_schedules import paired

from brainres.compare import Comparison, ComparisonResult
from brainres.settings import Sequence, Text
from brainres.stats import adjust_results
from brainres.stats.result import StatResult

SHARED = ("continual-backprop", "static")


def arms(model: xr.Dataset) -> tuple[dict, dict, list]:
    """``{arm: label}`` of the arms without an integration time, ``{(arm, I): label}``, and the sorted ``I``."""
    shared, timed = {}, {}
    for label in (str(v) for v in model["variant"].values):
        arm, time = str(coordinate(model, "arm", label)), coordinate(model, "integration_time", label)
        if time is None or not np.isfinite(time):
            shared[arm] = label
        else:
            timed[(arm, int(time))] = label
    times = sorted({t for _, t in timed})
    if not times or "grow" not in {a for a, _ in timed}:
        raise ComparisonError("grow-prune-continual needs grow variants at one or more integration times")
    return shared, timed, times


def run(model: xr.Dataset, data: None, *, measures: list = ["trajectory_accuracy", "final_accuracy"],  # noqa: B006
        summarise: list = ["mean_end_of_task_accuracy"], ci_level: float = 0.95) -> ComparisonResult:  # noqa: B006
    """Grow, prune, continual backprop and static over a task sequence, by integration time."""
    require(model, "grow-prune-continual", variables=(*measures, *summarise, "held_out_accuracy"),
            coords=("arm", "integration_time"))
    shared, timed, times = arms(model)
    labels = [str(v) for v in model["variant"].values]
    results = [summary(model[name].sel(variant=label).values, name, ci_level=ci_level,
                       label=f"{label}: {name.replace('_', ' ')}", variant=label,
                       arm=coordinate(model, "arm", label))
               for label in labels for name in (*measures, *summarise)]
    differences, verdicts = [], {}
    for time in times:
        present = {arm: timed[(arm, time)] for arm in ("grow", "prune") if (arm, time) in timed}
        present.update(shared)
        contrasts = [(a, b) for a, b in (("grow", "prune"), ("grow", "continual-backprop"), ("grow", "static"),
                                         ("prune", "continual-backprop"), ("prune", "static"))
                     if a in present and b in present]
        for first, second in contrasts:
            for name in measures:
                differences.append(paired(model, present[first], present[second], name, ci_level=ci_level,
                                          label=f"I = {time}: {first} minus {second}, {name.replace('_', ' ')}",
                                          integration_time=time, pair=f"{first} - {second}"))
    for arm in ("grow", "prune"):
        if (arm, times[0]) in timed and (arm, times[-1]) in timed and len(times) > 1:
            for name in measures:
                differences.append(paired(model, timed[(arm, times[-1])], timed[(arm, times[0])], name,
                                          ci_level=ci_level, pair=f"{arm} I={times[-1]} - I={times[0]}",
                                          label=f"integration effect: {arm} at I = {times[-1]} minus I = {times[0]}, "
                                                f"{name.replace('_', ' ')}"))
    adjusted = adjust_results(differences, method="holm") if len(differences) > 1 else differences
    results += adjusted
    primary = measures[0]
    for time in times:
        against = [r for r in adjusted if r.extra.get("integration_time") == time and r.statistic.startswith(primary)
                   and r.extra["pair"].startswith("grow - ")]
        verdicts[time] = all(r.ci_high >= 0 for r in against)
    effect = next((r for r in adjusted if r.extra.get("pair", "").startswith("grow I=")
                   and r.statistic.startswith(primary)), None)
    shown = bool(len(times) > 1 and verdicts[times[-1]] and not verdicts[times[0]] and effect is not None
                 and effect.ci_low > 0)
    summary_line = "; ".join(f"I = {t}: grow {'competitive' if v else 'not competitive'}" for t, v in verdicts.items())
    results.append(StatResult(
        statistic="grow_competitive_with_integration", estimate=np.nan if effect is None else effect.estimate,
        n=int(model.sizes["seed"]), method=f"integration effect of grow on {primary} and the per-I verdicts",
        extra={"label": f"headline ({'shown' if shown else 'not shown'}): {summary_line}", "n_unit": "seeds",
               "shown": shown}))
    figures = {"integration": _integration_figure(model, shared, timed, times, primary, ci_level),
               "trajectory": banded_lines(
                   {label: model["held_out_accuracy"].sel(variant=label).transpose("seed", "eval_step").values
                    for label in labels}, model["eval_step"].values, ci_level=ci_level,
                   title="accuracy over the tasks seen, during training", x_label="training step",
                   y_label="held-out accuracy (tasks seen)",
                   caption=f"Mean over {model.sizes['seed']} seeds; band: {ci_level:.0%} Student t interval.")}
    config = model.attrs.get("variant_configs", {}).get(labels[0], {})
    methods = (f"grow-prune-continual: a sequence of {config.get('n_tasks', '?')} {config.get('task_sequence', '')} "
               f"tasks switching every {config.get('task_switch_every', '?')} steps; {len(labels)} variants (grow and "
               f"prune with integration times {', '.join(map(str, times))} steps before each switch; "
               f"{', '.join(shared) or 'no shared arms'}), {model.sizes['seed']} seeds each. {', '.join(measures)} "
               f"(held-out accuracy averaged over the tasks seen) and {', '.join(summarise)} are averaged over seeds "
               f"with Student t intervals ({ci_level:.0%}); the {len(differences)} differences between arms (per "
               "integration time, and each schedule's longest minus shortest integration time) are paired over "
               "seeds and Holm-adjusted as one family. Grow is called competitive at an integration time when no "
               f"arm is shown better on {primary} (every paired {ci_level:.0%} interval of grow minus that arm "
               "reaches 0; the intervals are not adjusted, the p-values are).")
    return ComparisonResult(comparison="grow-prune-continual",
                            title="Continual learning: grow vs prune vs continual backprop by integration time",
                            results=results, figures=figures, methods=methods,
                            inputs={"n_variants": len(labels), "n_seeds": int(model.sizes["seed"]),
                                    "integration_times": times, "headline_shown": shown})


def _integration_figure(model, shared, timed, times, measure, ci_level) -> xr.Dataset:
    """The first measure by integration time: grow and prune as lines, the shared arms flat."""
    curves = {}
    for arm in ("grow", "prune"):
        if all((arm, t) in timed for t in times):
            curves[arm] = np.stack([model[measure].sel(variant=timed[(arm, t)]).values for t in times], axis=1)
    for arm, label in shared.items():
        curves[arm] = np.repeat(model[measure].sel(variant=label).values[:, None], len(times), axis=1)
    effect = {arm: np.nanmean(curves[arm][:, -1] - curves[arm][:, 0]) for arm in ("grow", "prune") if arm in curves}
    return banded_lines(curves, np.array(times), ci_level=ci_level,
                        title=f"{measure.replace('_', ' ')} by integration time",
                        x_label="integration time I (steps from a change to the next task switch)",
                        y_label=measure.replace("_", " "),
                        caption=f"Mean over {model.sizes['seed']} seeds; band: {ci_level:.0%} Student t interval. "
                                "Static and continual backprop do not depend on I (flat).",
                        annotation="\n".join(f"{arm}: I = {times[-1]} minus I = {times[0]}: {fmt(value, 3)}"
                                             for arm, value in effect.items()))


COMPARISON = Comparison(id="grow-prune-continual", description="plasticity: grow vs prune vs continual backprop over a "
                        "task sequence, by integration time", run=run, data_kind=None, model_kinds=("task",),
                        families=("plasticity",),
                        options={"measures": Sequence(Text(), unique=True),
                                 "summarise": Sequence(Text(), unique=True, non_empty=False), "ci_level": CI_LEVEL})
