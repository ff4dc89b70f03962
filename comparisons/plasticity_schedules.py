"""``grow-prune``: grow versus prune versus static at the same final widths, final and trajectory-averaged accuracy.

The model is a plasticity ``schedules`` sweep (``[model.sweep] kind =
"schedules"``): every arm ends at the same widths; grow starts below them,
prune above, static trains them throughout (and is the final architecture
trained from scratch). The arms can differ at the end (final held-out
accuracy) and along the way (the mean of the held-out accuracy over the
evaluations during training, ``trajectory_accuracy``).

Reported per trunk (when the model has several) and arm, over training seeds
(Student t): each measure in ``measures`` and ``summarise``; then for each
pair in ``pairs`` and each measure, the paired difference over seeds (same
seed: same initial draw of the shared data order), Holm-adjusted over all
differences of the comparison. The figures are the held-out accuracy
trajectories per arm.
"""

from __future__ import annotations

import xarray as xr
from brainres.comparisons._common import CI_LEVEL, ComparisonError
from brainres.comparisons._plasticity import banded_lines, coordinate, require, summary

from brainres.compare import Comparison, ComparisonResult
from brainres.settings import Sequence, Text
from brainres.stats import adjust_results, seed_difference


def groups(model: xr.Dataset) -> dict[str, dict[str, str]]:
    """``{trunk: {arm: variant label}}`` (one group when the model has one trunk)."""
    grouped: dict = {}
    for label in (str(v) for v in model["variant"].values):
        trunk = str(coordinate(model, "trunk", label)) if "trunk" in model.coords else "model"
        arm = str(coordinate(model, "arm", label))
        if arm in grouped.setdefault(trunk, {}):
            raise ComparisonError(f"two variants of trunk {trunk} are the arm {arm!r}: {grouped[trunk][arm]!r} and "
                                  f"{label!r}")
        grouped[trunk][arm] = label
    return grouped


def paired(model, first: str, second: str, measure: str, *, ci_level: float, label: str, **extra):
    """Paired difference over seeds of ``measure`` between two variants."""
    return seed_difference(model[measure].sel(variant=first).values, model[measure].sel(variant=second).values,
                           statistic=measure, ci_level=ci_level,
                           extra={"label": label, "variant": first, "reference": second, **extra})


def run(model: xr.Dataset, data: None, *, measures: list = ["final_accuracy", "trajectory_accuracy"],  # noqa: B006
        summarise: list = ["mean_parameters"],  # noqa: B006
        pairs: list = [["grow", "prune"], ["grow", "static"], ["prune", "static"]],  # noqa: B006
        ci_level: float = 0.95) -> ComparisonResult:
    """Grow vs prune vs static per trunk: summaries per arm and Holm-adjusted paired differences."""
    require(model, "grow-prune", variables=(*measures, *summarise, "held_out_accuracy"), coords=("arm",))
    for name in (*measures, *summarise):
        if set(model[name].dims) != {"variant", "seed"}:
            raise ComparisonError(f"{name!r} is not one value per seed (dims {list(model[name].dims)})")
    grouped = groups(model)
    results, differences, figures = [], [], {}
    for trunk, arms in grouped.items():
        for arm, label in arms.items():
            for name in (*measures, *summarise):
                results.append(summary(model[name].sel(variant=label).values, name, ci_level=ci_level,
                                       label=f"{trunk}, {arm}: {name.replace('_', ' ')}", variant=label, trunk=trunk,
                                       arm=arm))
        for first, second in pairs:
            if first not in arms or second not in arms:
                continue
            for name in measures:
                differences.append(paired(model, arms[first], arms[second], name, ci_level=ci_level,
                                          label=f"{trunk}: {first} minus {second}, {name.replace('_', ' ')}",
                                          trunk=trunk, pair=f"{first} - {second}"))
        curves = {arm: model["held_out_accuracy"].sel(variant=label).transpose("seed", "eval_step").values
                  for arm, label in arms.items()}
        figures[f"trajectory-{trunk}"] = banded_lines(
            curves, model["eval_step"].values, ci_level=ci_level, title=f"{trunk}: held-out accuracy during training",
            x_label="training step", y_label="held-out accuracy",
            caption=f"Mean over {model.sizes['seed']} seeds; band: {ci_level:.0%} Student t interval over seeds. "
                    "Trajectory-averaged accuracy is the mean of each curve.")
    if not differences:
        present = sorted({arm for arms in grouped.values() for arm in arms})
        raise ComparisonError(f"no pair of {pairs} is present among the arms {present}")
    results += adjust_results(differences, method="holm") if len(differences) > 1 else differences
    methods = (f"grow-prune: {sum(len(a) for a in grouped.values())} arms ({', '.join(next(iter(grouped.values())))}) "
               f"ending at the same widths were each trained with {model.sizes['seed']} seeds"
               f"{' per trunk (' + ', '.join(grouped) + ')' if len(grouped) > 1 else ''}; "
               f"{', '.join(measures + summarise)} are averaged over seeds with Student t intervals ({ci_level:.0%}). "
               f"The arms {', '.join(f'{a} - {b}' for a, b in pairs)} are compared seed by seed (paired t, the same "
               f"seeds), p-values Holm-adjusted over the {len(differences)} differences.")
    return ComparisonResult(comparison="grow-prune", title="Grow vs prune vs static: final and trajectory accuracy",
                            results=results, figures=figures, methods=methods,
                            inputs={"n_variants": int(model.sizes["variant"]), "n_seeds": int(model.sizes["seed"]),
                                    "trunks": list(grouped)})


COMPARISON = Comparison(id="grow-prune", description="plasticity: grow vs prune vs static at the same final widths",
                        run=run, data_kind=None, model_kinds=("task",), families=("plasticity",),
                        options={"measures": Sequence(Text(), unique=True),
                                 "summarise": Sequence(Text(), unique=True, non_empty=False),
                                 "pairs": Sequence(Sequence(Text(), unique=True)), "ci_level": CI_LEVEL})
