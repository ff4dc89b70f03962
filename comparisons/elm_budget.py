"""``elm-budget``: under one parameter budget, does an allocation between the extremes beat both?

The model is an ELM budget line (``[model.sweep] kind = "budget-line"``): the
same number of parameters spent on few complex neurons (``fewest``), many
simple ones (``most``), and allocations between them, one of which, the
median allocation, is pre-specified as ``middle`` before anything trains.

Reported: each allocation's test accuracy (mean over seeds, Student t); the
pre-specified middle minus each extreme (paired over seeds); every interior
allocation minus each extreme, Holm-adjusted over that family; and the
verdict for the headline: the middle beats both extremes when both paired
intervals lie above zero.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from brainres.comparisons._common import CI_LEVEL, SEED, ComparisonError, fmt
from brainres.comparisons._sweeps import lines_figure, per_seed, summaries
from brainres.compare import Comparison, ComparisonResult
from brainres.settings import Text
from brainres.stats import adjust_results, seed_difference, seed_summary
from brainres.stats.result import StatResult


def run(model: xr.Dataset, data: None, *, measure: str = "test_metric", ci_level: float = 0.95,
        bootstrap_seed: int = 0) -> ComparisonResult:
    """The interior-optimum test on a budget line of an ELM model.

    ``bootstrap_seed`` seeds the percentile bootstrap of seeds shown beside
    each paired difference's Student t interval (10,000 resamples).
    """
    if "role" not in model.coords:
        raise ComparisonError("elm-budget needs a budget-line sweep ([model.sweep] kind = \"budget-line\"); "
                              "the variants have no 'role'")
    values = per_seed(model, measure)
    roles = {str(v): str(r) for v, r in zip(model["variant"].values, model["role"].values)}
    labels = list(roles)
    fewest = next(v for v, r in roles.items() if r == "fewest")
    most = next(v for v, r in roles.items() if r == "most")
    middle = next(v for v, r in roles.items() if r == "middle")
    results = summaries(values, measure, ci_level=ci_level, model=model)

    def difference(label, extreme, name):
        first, second = values.sel(variant=label).values, values.sel(variant=extreme).values
        # The percentile bootstrap of the seeds is shown beside the t interval for comparison; with five
        # seeds it is too narrow (it cannot see more spread than the seeds show), so the verdict uses t.
        boot = seed_summary(first - second, interval="percentile", ci_level=ci_level, n_resamples=10_000,
                            seed=bootstrap_seed)
        return seed_difference(first, second, statistic=measure, ci_level=ci_level,
                               extra={"label": f"{label} minus {name} ({extreme})", "variant": label,
                                      "reference": extreme, "bootstrap_ci_low": boot.ci_low,
                                      "bootstrap_ci_high": boot.ci_high})

    primary = [difference(middle, fewest, "fewest neurons"), difference(middle, most, "most neurons")]
    results += [r.replace(extra={**r.extra, "label": "pre-specified middle: " + r.extra["label"], "headline": True})
                for r in primary]
    others = [v for v in labels if roles[v] == "between"]
    family = [difference(v, extreme, name) for v in others
              for extreme, name in ((fewest, "fewest neurons"), (most, "most neurons"))]
    results += adjust_results(family, method="holm") if family else []
    beats = all(r.ci_low > 0 for r in primary)
    verdict = ("shown: the pre-specified middle allocation beats both extremes" if beats else
               "not shown: the pre-specified middle does not beat both extremes (a paired interval includes or lies "
               "below 0)")
    results.append(StatResult(statistic="interior_optimum", estimate=float(min(r.estimate for r in primary)),
                              n=int(values.sizes["seed"]), method="smaller of the middle's two paired differences",
                              extra={"label": f"headline: {verdict}", "n_unit": "seeds", "shown": beats,
                                     "headline": True}))
    n_neurons = np.asarray(model["n_neurons"].values, dtype=float)
    figure = lines_figure(
        results[:len(labels)], n_neurons, title=f"one budget ({int(model['budget'].values[0])} parameters), "
                                                "spent on N neurons", x_label="neurons N (log scale)",
        y_label=(f"test {model.attrs['test_metric_name'].replace('_', ' ')}"
                 if measure == "test_metric" and "test_metric_name" in model.attrs else measure.replace("_", " ")),
        caption=f"Mean over {values.sizes['seed']} seeds; band: {ci_level:.0%} Student t interval over seeds. "
                "Left: few complex neurons; right: many simple ones.",
        annotation=f"middle - fewest = {fmt(primary[0].estimate, 3)} [{fmt(primary[0].ci_low, 3)}, "
                   f"{fmt(primary[0].ci_high, 3)}]\nmiddle - most = {fmt(primary[1].estimate, 3)} "
                   f"[{fmt(primary[1].ci_low, 3)}, {fmt(primary[1].ci_high, 3)}]")
    figure.attrs["x_scale"] = "log"
    methods = (f"elm-budget: {len(labels)} allocations of one parameter budget along a budget line (from "
               f"{fewest} to {most}; pre-specified middle {middle}) were each trained with "
               f"{values.sizes['seed']} seeds; {measure} is averaged over seeds with a Student t interval, and the "
               "middle is compared with each extreme seed by seed (paired t, same seeds; a percentile bootstrap of the "
               f"seeds, 10,000 resamples, seed {bootstrap_seed}, is shown beside it). The other interior allocations' "
               "differences to the extremes are exploratory and Holm-adjusted as one family.")
    return ComparisonResult(comparison="elm-budget", title="ELM: one parameter budget, many ways to spend it",
                            results=results, figures={"budget": figure}, methods=methods,
                            inputs={"n_variants": len(labels), "n_seeds": int(values.sizes["seed"]),
                                    "headline_shown": bool(beats)})


COMPARISON = Comparison(id="elm-budget", description="ELM: does an interior allocation of one budget beat both extremes",
                        run=run, data_kind=None, model_kinds=("task",), families=("elm",),
                        options={"measure": Text(), "ci_level": CI_LEVEL, "bootstrap_seed": SEED})
