"""Spending one parameter budget many ways: allocations of (N, k_e, k_c), and the pipeline's sweeps."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from brainres.families.elm.network import parameter_count as _model_parameter_count
from brainres.families.elm.tasks import ELMFamilyError


def allocations(budget: int, *, n_inputs: int, n_outputs: int, tolerance: float = 0.1, mlp_width_factor: int = 2,
                n_values: Sequence[int] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128),
                k_e_values: Sequence[int] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32),
                k_c_values: Sequence[int] = (1, 2, 4, 8, 16, 32)) -> pd.DataFrame:
    """Every ``(N, k_e, k_c)`` on the given grids whose exact ``P`` lies within ``tolerance`` of ``budget``.

    Returns a DataFrame (n_neurons, k_e, k_c, parameter_count, relative_error)
    sorted by n_neurons, k_e, k_c. Combinations where ``k_c`` exceeds the
    ``n_inputs + N`` available sources are left out.
    """
    if budget < 1 or not 0 <= tolerance < 1:
        raise ELMFamilyError(f"need budget >= 1 and 0 <= tolerance < 1, got budget={budget}, tolerance={tolerance}")
    rows = []
    for n_neurons in n_values:
        for k_e in k_e_values:
            for k_c in k_c_values:
                if k_c > n_inputs + n_neurons:
                    continue
                count = _model_parameter_count(n_neurons=n_neurons, k_e=k_e, k_c=k_c, n_outputs=n_outputs,
                                               mlp_width_factor=mlp_width_factor)
                error = (count - budget) / budget
                if abs(error) <= tolerance:
                    rows.append({"n_neurons": n_neurons, "k_e": k_e, "k_c": k_c, "parameter_count": count,
                                 "relative_error": error})
    columns = ["n_neurons", "k_e", "k_c", "parameter_count", "relative_error"]
    return pd.DataFrame(rows, columns=columns).sort_values(["n_neurons", "k_e", "k_c"], ignore_index=True)


def budget_line(budget: int, *, n_inputs: int, n_outputs: int, n_values: Sequence[int], k_c: int | None = None,
                k_e: int | None = None, mlp_width_factor: int = 2, max_fill: int = 256,
                tolerance: float = 0.1) -> pd.DataFrame:
    """One allocation per ``N``, filling the budget with the knob that is not fixed.

    Give exactly one of ``k_c`` and ``k_e``; for each ``N`` in ``n_values``
    the other knob (1 .. ``max_fill``, and for ``k_c`` at most the
    ``n_inputs + N`` sources) takes the value whose ``P`` is closest to
    ``budget``. This trades neurons against one kind of per-neuron resource
    along a single line. ``N`` values whose best fill still misses the budget
    by more than ``tolerance`` (relative) are dropped.
    """
    if (k_c is None) == (k_e is None):
        raise ELMFamilyError(f"budget_line needs exactly one of k_c and k_e fixed, got k_c={k_c}, k_e={k_e}")
    fill = "k_e" if k_e is None else "k_c"
    rows = []
    for n_neurons in n_values:
        largest = max_fill if fill == "k_e" else min(max_fill, n_inputs + n_neurons)
        if fill == "k_e" and k_c > n_inputs + n_neurons:
            continue
        candidates = []
        for value in range(1, largest + 1):
            knobs = {"k_e": k_e, "k_c": k_c, fill: value}
            count = _model_parameter_count(n_neurons=n_neurons, n_outputs=n_outputs,
                                           mlp_width_factor=mlp_width_factor, **knobs)
            candidates.append((abs(count - budget), value, count, knobs))
        _, _, count, knobs = min(candidates, key=lambda c: c[:2])
        if abs(count - budget) <= tolerance * budget:
            rows.append({"n_neurons": n_neurons, **knobs, "parameter_count": count,
                         "relative_error": (count - budget) / budget})
    return pd.DataFrame(rows, columns=["n_neurons", "k_e", "k_c", "parameter_count", "relative_error"])




# --------------------------------------------------------------------------- sweeps (pipelines)
def _task_size(config) -> tuple[int, int]:
    from brainres.families.elm.tasks import make_task

    task = make_task(config)
    return task.n_inputs, task.n_outputs


def budget_line_variants(config, options: dict) -> list:
    """``[model.sweep] kind = "budget-line"``: one parameter budget spent along one line.

    Options: ``budget`` (parameters), ``n_values`` (neuron counts to try),
    ``fill`` (``"k_e"`` or ``"k_c"``: the knob that fills the budget; the
    other keeps the base value), ``tolerance`` (relative, default 0.1). The
    allocations with the fewest and the most neurons are the extremes; the
    median allocation, fixed before anything trains, is the pre-specified
    ``middle``.
    """
    from brainres.families.base import Variant

    unknown = sorted(set(options) - {"budget", "n_values", "fill", "tolerance"})
    if unknown or "budget" not in options or "n_values" not in options:
        raise ELMFamilyError(f"a budget-line sweep takes budget, n_values, fill and tolerance; got {sorted(options)}")
    fill = options.get("fill", "k_e")
    if fill not in ("k_e", "k_c"):
        raise ELMFamilyError(f"fill must be 'k_e' or 'k_c', got {fill!r}")
    n_inputs, n_outputs = _task_size(config)
    fixed = {"k_c": config.k_c} if fill == "k_e" else {"k_e": config.k_e}
    line = budget_line(int(options["budget"]), n_inputs=n_inputs, n_outputs=n_outputs,
                       n_values=[int(n) for n in options["n_values"]], mlp_width_factor=config.mlp_width_factor,
                       tolerance=float(options.get("tolerance", 0.1)), **fixed)
    line = line.drop_duplicates(["n_neurons", "k_e", "k_c"]).reset_index(drop=True)
    if len(line) < 3:
        raise ELMFamilyError(f"budget {options['budget']} gives only {len(line)} distinct allocations for n_values "
                             f"{list(options['n_values'])}; need at least 3 (two extremes and one between)")
    roles = ["between"] * len(line)
    roles[0], roles[-1], roles[len(line) // 2] = "fewest", "most", "middle"
    return [Variant(label=f"N={row.n_neurons} k_e={row.k_e} k_c={row.k_c}",
                    overrides={"n_neurons": int(row.n_neurons), "k_e": int(row.k_e), "k_c": int(row.k_c)},
                    tags={"role": role, "budget": int(options["budget"]), "fill": fill,
                          "parameter_count": int(row.parameter_count)})
            for role, row in zip(roles, line.itertuples())]


def axis_variants(config, options: dict) -> list:
    """``[model.sweep] kind = "axis"``: one knob (``axis``: n_neurons, k_e or k_c) over ``values``, others at base."""
    from brainres.families.base import Variant

    axis, values = options.get("axis"), options.get("values")
    if axis not in ("n_neurons", "k_e", "k_c") or not values:
        raise ELMFamilyError(f"an axis sweep needs axis (n_neurons, k_e or k_c) and values; got {options}")
    return [Variant(label=f"{axis}={int(v)}", overrides={axis: int(v)}, tags={"axis": axis, "value": int(v)})
            for v in sorted(int(v) for v in values)]
