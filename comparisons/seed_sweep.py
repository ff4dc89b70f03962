"""``seed-sweep``: how one measure changes across the variants of a swept model, with paired differences.

For a task family's model with several variants (a width sweep, a schedule
sweep, one knob varied), a per-seed measure (``test_metric``, ``final_accuracy``,
``transmitted_bits`` at step 1...) is summarised per variant over training
seeds (Student t), and every variant is compared with a reference variant
seed by seed (paired t; Holm-adjusted over the family of differences).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from brainres.comparisons._common import CI_LEVEL, ComparisonError
from brainres.comparisons._sweeps import lines_figure, per_seed, summaries
from brainres.compare import Comparison, ComparisonResult
from brainres.settings import Mapping, Optional, Text
from brainres.stats import adjust_results, seed_difference


def run(model: xr.Dataset, data: None, *, measure: str, select: dict | None = None, x: str | None = None,
        reference: str | None = None, ci_level: float = 0.95) -> ComparisonResult:
    """Per-variant means of ``measure`` over seeds, and paired differences to ``reference``.

    Parameters
    ----------
    measure : str
        A variable with one value per seed (after ``select``).
    select : dict, optional
        One value of each further dimension, e.g. ``{"step": 1}``.
    x : str, optional
        A numeric variant coordinate to plot against (e.g. ``"bottleneck_width"``); default the variant order.
    reference : str, optional
        The variant every other is compared with; default the first.
    """
    values = per_seed(model, measure, select)
    labels = [str(v) for v in values["variant"].values]
    reference = labels[0] if reference is None else reference
    if reference not in labels:
        raise ComparisonError(f"reference {reference!r} is not a variant; variants: {labels}")
    results = summaries(values, measure, ci_level=ci_level, model=model)
    differences = []
    for label in labels:
        if label == reference:
            continue
        differences.append(seed_difference(values.sel(variant=label).values, values.sel(variant=reference).values,
                                           statistic=measure, ci_level=ci_level,
                                           extra={"label": f"{label} minus {reference}: {measure.replace('_', ' ')}",
                                                  "variant": label, "reference": reference}))
    differences = adjust_results(differences, method="holm") if len(differences) > 1 else differences
    if differences:  # the summary's finding: the last variant of the sweep against the reference
        differences[-1] = differences[-1].replace(extra={**differences[-1].extra, "headline": True})
    results += differences
    if x is not None:
        if x not in model.coords or model[x].dims != ("variant",):
            raise ComparisonError(f"x={x!r} is not a coordinate of the variants; they have "
                                  f"{[c for c, v in model.coords.items() if v.dims == ('variant',)]}")
        positions = np.asarray(model[x].values, dtype=float)
    else:
        positions = np.arange(len(labels), dtype=float)
    where = f" at {', '.join(f'{k} = {v}' for k, v in select.items())}" if select else ""
    figure = lines_figure(results[:len(labels)], positions, title=f"{measure.replace('_', ' ')}{where} by variant",
                          x_label=x or "variant (in sweep order)", y_label=measure.replace("_", " "),
                          caption=f"Mean over {values.sizes['seed']} seeds; band: {ci_level:.0%} Student t interval "
                                  "over seeds.",
                          annotation=f"reference: {reference}")
    methods = (f"seed-sweep: {measure}{where} for each of {len(labels)} variants was averaged over "
               f"{values.sizes['seed']} training seeds with a Student t interval ({ci_level:.0%}); every variant was "
               f"compared with {reference} seed by seed (paired t), p-values Holm-adjusted over the "
               f"{len(differences)} differences.")
    return ComparisonResult(comparison="seed-sweep", title=f"{measure.replace('_', ' ')} across the sweep",
                            results=results, figures={"sweep": figure}, methods=methods,
                            inputs={"n_variants": len(labels), "n_seeds": int(values.sizes["seed"]),
                                    "measure": measure, "reference": reference})


COMPARISON = Comparison(id="seed-sweep", description="a per-seed measure across a swept model's variants",
                        run=run, data_kind=None, model_kinds=("task",), requires=lambda options: (options["measure"],),
                        options={"measure": Text(), "select": Optional(Mapping()), "x": Optional(Text()),
                                 "reference": Optional(Text()), "ci_level": CI_LEVEL})
