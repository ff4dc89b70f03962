"""``seqpar-switch``: after a switch of input distribution, does the code reorganise?

The model is a seqpar switch sweep (``[model.sweep] kind = "switch"``): per
seed, a code trained on uniform inputs (``before``); the same model trained on
after the bits it sent first are held at 0 (``after``, and further ``after``
conditions that vary the training length, learning rate or temperature after
the switch); and the same model trained on for as long on uniform inputs
(``control``), all measured under the new distribution. The ideal code sends
``min(k, H_new)`` bits at step 1.

Reported, as means over training seeds with Student t intervals: per variant
the bits at step 1 (tested against the ideal, with how many seeds reach it),
the bits after the last step, the steps to transmit ``H_new``, the mean arrival
step of the free bits, and (against ``before``) the fraction of free bits whose
arrival step changed and the schedule change; then paired differences over
seeds of every ``after`` condition minus its control (the control of the same
length when there is one) and minus ``before``: bits at step 1 as the primary
family, the rest as a secondary family, each Holm-adjusted. The headline, "the
code reorganises to the ideal", is shown when some ``after`` condition's
interval of the bits at step 1 lies within ``tolerance`` of the ideal.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from brainres.comparisons._common import CI_LEVEL, ComparisonError, fmt
from brainres.comparisons._seqpar import curves_figure, difference, require_seqpar, step_values, summary
from brainres.comparisons._sweeps import per_seed
from brainres.compare import Comparison, ComparisonResult
from brainres.settings import Real
from brainres.stats import adjust_results
from brainres.stats.result import StatResult

TEXT = {"bits_step_1": "bits at step 1", "bits_final": "bits after the last step",
        "steps_to_transmit": "steps to transmit H", "mean_arrival_step": "mean arrival step of the free bits",
        "arrival_changed": "fraction of free bits arriving at another step than before",
        "schedule_change": "schedule change against before"}


def _changes(model: xr.Dataset, before: str) -> tuple[np.ndarray, np.ndarray]:
    """Per variant and seed: fraction of free bits whose arrival step differs from ``before``, and the schedule change.

    The schedule is the step x bit map of newly arrived information; its change is
    ``sum |new - before| / (sum new + sum before)`` (0 = the same, 1 = disjoint).
    """
    arrivals = model["arrival_step"].transpose("variant", "seed", "input_bit").values.astype(float)
    gains = np.diff(model["bit_information"].transpose("variant", "seed", "step", "input_bit").values.astype(float),
                    axis=2, prepend=0)
    index = [str(v) for v in model["variant"].values].index(before)
    changed = np.full(arrivals.shape[:2], np.nan)
    schedule = np.full(arrivals.shape[:2], np.nan)
    for v in range(arrivals.shape[0]):
        for s in range(arrivals.shape[1]):
            reference, row = arrivals[index, s], arrivals[v, s]
            free = np.isfinite(reference) | np.isfinite(row)
            moved = np.nan_to_num(reference, nan=-1) != np.nan_to_num(row, nan=-1)
            changed[v, s] = moved[free].mean() if free.any() else np.nan
            total = gains[index, s].sum() + gains[v, s].sum()
            schedule[v, s] = np.abs(gains[index, s] - gains[v, s]).sum() / total if total > 0 else np.nan
    return changed, schedule


def run(model: xr.Dataset, data: None, *, ci_level: float = 0.95, tolerance: float = 0.05) -> ComparisonResult:
    """Before, after and control of a switch of input distribution, per condition, with paired differences."""
    require_seqpar(model, "seqpar-switch")
    if "phase" not in model.coords or "arrival_step" not in model:
        raise ComparisonError("seqpar-switch needs a switch sweep ([model.sweep] kind = \"switch\") with a discrete "
                              "bottleneck; the variants have no 'phase' or no exact per-bit information")
    labels = [str(v) for v in model["variant"].values]
    phase = dict(zip(labels, (str(p) for p in model["phase"].values)))
    epochs = dict(zip(labels, (float(e) for e in model["switch_epochs"].values)))
    before = next((v for v in labels if phase[v] == "before"), None)
    afters = [v for v in labels if phase[v] == "after"]
    controls = [v for v in labels if phase[v] == "control"]
    if before is None or not afters or not controls:
        raise ComparisonError(f"seqpar-switch needs before, after and control variants; phases: {phase}")
    fixed = model["fixed_bit"].transpose("variant", "seed", "input_bit").values
    if not (fixed == fixed[:1]).all():
        raise ComparisonError("the variants were measured under different distributions for the same seed")

    def control_of(after):
        return next((c for c in controls if epochs[c] == epochs[after]), controls[0])

    width = int(model["bottleneck_width"].values[0])
    target = float(np.nanmean(per_seed(model, "target_bits").sel(variant=before).values))
    ideal = min(width, target)
    changed, schedule = _changes(model, before)
    values = {"bits_step_1": step_values(model, 1).values, "bits_final": step_values(model, "last").values,
              "steps_to_transmit": per_seed(model, "steps_to_transmit").values,
              "mean_arrival_step": per_seed(model, "mean_arrival_step").values,
              "arrival_changed": changed, "schedule_change": schedule}
    row = {v: i for i, v in enumerate(labels)}
    n_seeds = int(model.sizes["seed"])
    results, step1 = [], {}
    for variant in labels:
        first = values["bits_step_1"][row[variant]]
        reached = int(np.sum(first >= ideal - tolerance))
        step1[variant] = summary(first, "bits_step_1", f"{variant}: bits at step 1 (ideal {ideal:g}; {reached} of "
                                 f"{n_seeds} seeds reach it; p: mean = ideal)", ci_level=ci_level, null=ideal,
                                 extra={"variant": variant, "phase": phase[variant], "ideal": ideal,
                                        "n_seeds_at_ideal": reached})
        results.append(step1[variant])
        for name in ("bits_final", "steps_to_transmit", "mean_arrival_step") + (
                ("arrival_changed", "schedule_change") if variant != before else ()):
            results.append(summary(values[name][row[variant]], name, f"{variant}: {TEXT[name]}", ci_level=ci_level,
                                   extra={"variant": variant, "phase": phase[variant]}))
    primary, secondary = [], []
    for after in afters:
        for reference in (control_of(after), before):
            for name in TEXT:
                if reference == before and name in ("arrival_changed", "schedule_change"):
                    continue  # before against itself is 0 by construction
                result = difference(values[name][row[after]], values[name][row[reference]], name,
                                    f"{after} minus {reference}: {TEXT[name]}", ci_level=ci_level,
                                    extra={"variant": after, "reference": reference})
                if result is not None:
                    (primary if name == "bits_step_1" else secondary).append(result)
    results += adjust_results(primary, method="holm") if len(primary) > 1 else primary
    results += adjust_results(secondary, method="holm") if len(secondary) > 1 else secondary
    best = max(afters, key=lambda v: step1[v].estimate)
    shown = any(step1[v].ci_low >= ideal - tolerance for v in afters)
    results.append(StatResult(
        statistic="reorganised_to_ideal", estimate=step1[best].estimate, ci_low=step1[best].ci_low,
        ci_high=step1[best].ci_high, ci_level=ci_level, interval=step1[best].interval, n=step1[best].n,
        method=f"best after-switch condition ({best}); shown when an interval lies within {tolerance:g} of the ideal",
        extra={"label": f"headline: {'shown' if shown else 'not shown'}: the code reorganises to the ideal "
                        f"{ideal:g} bits at step 1 (best: {best}, {fmt(step1[best].estimate, 3)} "
                        f"[{fmt(step1[best].ci_low, 3)}, {fmt(step1[best].ci_high, 3)}])",
               "n_unit": "seeds", "shown": shown, "ideal": ideal, "variant": best}))
    figures = {"curves": curves_figure(
        model, [before, afters[0], control_of(afters[0])], ["before", afters[0], control_of(afters[0])],
        ci_level=ci_level, title=f"information under the new distribution (H = {target:g} bits, k = {width})",
        caption=f"Exact I(X; C_1..t) under the new distribution, mean over {n_seeds} seeds; band: {ci_level:.0%} "
                "Student t interval over seeds.", annotation=f"ideal: {ideal:g} bits at step 1")}
    if len(afters) > 1:
        figures["step1"] = _conditions_figure(afters, step1, control_of, before, ideal, ci_level, n_seeds)
    methods = (f"seqpar-switch: per seed, a code trained on uniform inputs (before) was trained on after the {width} "
               f"bits it sent first at step 1 were held at 0 ({len(afters)} after-switch condition(s): "
               f"{', '.join(afters)}) and, as a control, for as long on uniform inputs ({', '.join(controls)}); all "
               f"are measured under the new distribution (H = {target:g} bits, ideal {ideal:g} bits at step 1), "
               f"exactly, by enumeration. Means over {n_seeds} training seeds with Student t intervals "
               f"({ci_level:.0%}); each after condition is compared seed by seed (paired t) with its control (the "
               "control of the same length where there is one) and with before; the differences in bits at step 1 "
               "form the primary family and the rest a secondary one, each Holm-adjusted. The headline counts as "
               f"shown when an after condition's interval of the bits at step 1 lies within {tolerance:g} bits of "
               "the ideal.")
    return ComparisonResult(comparison="seqpar-switch", title="seqpar: does the code reorganise after a switch?",
                            results=results, figures=figures, methods=methods,
                            inputs={"n_variants": len(labels), "n_seeds": n_seeds, "ideal_bits_step_1": ideal,
                                    "headline_shown": bool(shown)})


def _conditions_figure(afters, step1, control_of, before, ideal, ci_level, n_seeds) -> xr.Dataset:
    series = {"after the switch": [step1[v] for v in afters], "its control": [step1[control_of(v)] for v in afters],
              "before the switch": [step1[before]] * len(afters)}
    mean = np.array([[r.estimate for r in rs] for rs in series.values()] + [[ideal] * len(afters)])
    low = np.array([[r.ci_low for r in rs] for rs in series.values()] + [[ideal] * len(afters)])
    high = np.array([[r.ci_high for r in rs] for rs in series.values()] + [[ideal] * len(afters)])
    low, high = np.where(np.isfinite(low), low, mean), np.where(np.isfinite(high), high, mean)
    legend = "\n".join(f"{i + 1}: {v}" for i, v in enumerate(afters))
    return xr.Dataset(
        {"y": (("series", "x"), mean), "y_low": (("series", "x"), low), "y_high": (("series", "x"), high)},
        coords={"series": np.array([*series, "ideal"]), "x": np.arange(1, len(afters) + 1, dtype=float)},
        attrs={"figure": "lines", "title": "bits at step 1 under the new distribution, by condition",
               "x_label": "after-switch condition", "y_label": "I(X; C_1) [bits]", "annotation": legend,
               "caption": f"Mean over {n_seeds} seeds; band: {ci_level:.0%} Student t interval over seeds. The "
                          "control of each condition is the control of the same training length where there is one."})


COMPARISON = Comparison(id="seqpar-switch", description="seqpar: does the code reorganise after a switch of inputs",
                        run=run, data_kind=None, model_kinds=("task",), families=("seqpar",),
                        options={"ci_level": CI_LEVEL, "tolerance": Real(low=0)})
