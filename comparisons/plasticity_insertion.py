"""``insertion-gradient``: do newborn units receive less gradient than incumbents, and do they catch up?

The model is a plasticity ``insertion`` sweep (``[model.sweep] kind =
"insertion"``): one insertion event per run, in every trunk x insertion
method. At every step ``d`` after the insertion the export holds the ratio of
the newborns' mean incoming-gradient norm to the incumbents'
(``gradient_ratio``; averaged here over changed layers and events).

Reported per trunk and insertion method, over training seeds (Student t):
the ratio at insertion (``d = 0``, tested against parity, 1), early (mean of
``d < early_steps``) and late (mean of the last ``late_steps`` recorded
steps), and the recovery late minus at insertion (paired over seeds). Where
both trunks are present, the gap at insertion ``1 - ratio`` of the conv trunk
minus the MLP's, per insertion method (the two trunks' seeds as independent
samples, Welch t; Holm-adjusted over methods). The figure is the ratio's
trajectory for one insertion method.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from brainres.comparisons._common import CI_LEVEL, ComparisonError, fmt
from brainres.comparisons._plasticity import banded_lines, coordinate, require, summary

from brainres.compare import Comparison, ComparisonResult
from brainres.settings import Integer, Text
from brainres.stats import adjust_results, seed_difference


def ratio_trajectories(model: xr.Dataset) -> xr.DataArray:
    """Per variant and seed, the ratio at each step since insertion (mean over changed layers and events)."""
    ratio = model["gradient_ratio"]
    return ratio.mean([d for d in ratio.dims if d not in ("variant", "seed", "steps_since_insertion")], skipna=True)


def per_seed_ratios(trajectory: np.ndarray, *, early_steps: int, late_steps: int) -> dict:
    """At insertion, early and late ratio of each seed (rows of ``trajectory``, one column per step)."""
    at, early, late = [], [], []
    for row in np.asarray(trajectory, dtype=float):
        recorded = row[np.isfinite(row)]  # steps past the end of training were never recorded
        at.append(row[0])
        early.append(np.nanmean(row[:early_steps]) if np.isfinite(row[:early_steps]).any() else np.nan)
        late.append(recorded[-late_steps:].mean() if recorded.size else np.nan)
    return {"at_insertion": np.array(at), "early": np.array(early), "late": np.array(late)}


def run(model: xr.Dataset, data: None, *, early_steps: int = 5, late_steps: int = 50, figure_insertion: str = "random",
        ci_level: float = 0.95) -> ComparisonResult:
    """The newborn/incumbent gradient ratio after an insertion, per trunk and insertion method."""
    require(model, "insertion-gradient", variables=("gradient_ratio",), coords=("trunk", "insertion"))
    if early_steps < 1 or late_steps < 1:
        raise ComparisonError(f"early_steps and late_steps must be >= 1, got {early_steps} and {late_steps}")
    trajectories = ratio_trajectories(model)
    labels = [str(v) for v in model["variant"].values]
    names = {"at_insertion": "ratio at insertion (d = 0)", "early": f"early ratio (d = 0..{early_steps - 1})",
             "late": f"late ratio (last {late_steps} recorded steps)"}
    results, ratios = [], {}
    for label in labels:
        trunk, insertion = coordinate(model, "trunk", label), coordinate(model, "insertion", label)
        ratios[label] = per_seed_ratios(trajectories.sel(variant=label).transpose("seed", ...).values,
                                        early_steps=early_steps, late_steps=late_steps)
        for key, name in names.items():
            results.append(summary(ratios[label][key], f"ratio_{key}", ci_level=ci_level, null=1.0,
                                   label=f"{trunk}, {insertion} insertion: {name}", variant=label, trunk=trunk,
                                   insertion=insertion))
        results.append(seed_difference(ratios[label]["late"], ratios[label]["at_insertion"], statistic="ratio_recovery",
                                       ci_level=ci_level,
                                       extra={"label": f"{trunk}, {insertion} insertion: late minus at-insertion ratio "
                                                       "(recovery)", "variant": label, "trunk": trunk,
                                              "insertion": insertion}))
    gaps = []
    by_method = {}
    for label in labels:
        by_method.setdefault(coordinate(model, "insertion", label), {})[coordinate(model, "trunk", label)] = label
    for insertion, trunks in by_method.items():
        if {"mlp", "conv"} <= set(trunks):
            conv, mlp = ratios[trunks["conv"]]["at_insertion"], ratios[trunks["mlp"]]["at_insertion"]
            gaps.append(seed_difference(1 - conv, 1 - mlp, paired=False, statistic="conv_minus_mlp_gap",
                                        ci_level=ci_level,
                                        extra={"label": f"{insertion} insertion: gap at insertion (1 - ratio), conv "
                                                        "minus mlp", "insertion": insertion}))
    results += adjust_results(gaps, method="holm") if len(gaps) > 1 else gaps
    shown = [label for label in labels if coordinate(model, "insertion", label) == figure_insertion] or labels
    steps = model["steps_since_insertion"].values
    annotation = "\n".join(f"{label}: at insertion {fmt(np.nanmean(ratios[label]['at_insertion']), 3)}, late "
                           f"{fmt(np.nanmean(ratios[label]['late']), 3)}" for label in shown)
    figure = banded_lines({label: trajectories.sel(variant=label).transpose("seed", ...).values for label in shown},
                          steps, ci_level=ci_level, title="newborn / incumbent incoming-gradient norm after insertion",
                          x_label="training steps since insertion", y_label="gradient ratio (1 = parity)",
                          caption=f"Mean over {model.sizes['seed']} seeds; band: {ci_level:.0%} Student t interval "
                                  "over seeds at each step.", annotation=annotation)
    methods = (f"insertion-gradient: for each of {len(labels)} trunk x insertion-method variants, trained with "
               f"{model.sizes['seed']} seeds, the ratio of the newborn units' mean incoming-gradient norm (bias "
               "excluded) to the incumbents' was read at insertion (d = 0), averaged over d = 0.."
               f"{early_steps - 1} (early) and over the last {late_steps} recorded steps (late). Each is averaged over "
               f"seeds with a Student t interval ({ci_level:.0%}) and tested against parity (1); the recovery (late "
               "minus at insertion) is a paired difference over seeds."
               + (f" The conv-minus-MLP gap at insertion, (1 - ratio) conv minus (1 - ratio) MLP, treats the two "
                  f"trunks' seeds as independent samples (Welch t), Holm-adjusted over the {len(gaps)} insertion "
                  "methods." if gaps else ""))
    return ComparisonResult(comparison="insertion-gradient", title="Newborn units: gradient ratio after insertion",
                            results=results, figures={"trajectory": figure}, methods=methods,
                            inputs={"n_variants": len(labels), "n_seeds": int(model.sizes["seed"]),
                                    "early_steps": early_steps, "late_steps": late_steps})


COMPARISON = Comparison(id="insertion-gradient", description="plasticity: newborn/incumbent gradient ratio after an "
                        "insertion, per trunk and insertion method", run=run, data_kind=None, model_kinds=("task",),
                        families=("plasticity",),
                        options={"early_steps": Integer(low=1), "late_steps": Integer(low=1),
                                 "figure_insertion": Text(), "ci_level": CI_LEVEL})
