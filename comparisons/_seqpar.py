"""Helpers of the sequential/parallel headlines (``seqpar-widths``, ``seqpar-switch``): not a plug-in."""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from brainres.comparisons._common import ComparisonError
from brainres.comparisons._sweeps import per_seed
from brainres.stats import seed_difference, seed_summary
from brainres.stats.result import StatResult


def require_seqpar(model: xr.Dataset, comparison: str) -> None:
    if model.attrs.get("model_family") != "seqpar" or "variant" not in model.dims:
        raise ComparisonError(f"{comparison} takes a swept seqpar model (variants along 'variant'); got family "
                              f"{model.attrs.get('model_family')!r} with dims {list(model.dims)}")
    if "transmitted_bits" not in model:
        raise ComparisonError(f"{comparison}: the variants do not share their steps (n_steps), so their information "
                              f"curves were dropped when combined ({model.attrs.get('dropped_variables')})")


def step_values(model: xr.Dataset, step: int | str) -> xr.DataArray:
    """``transmitted_bits`` at one step (``"last"``: the final step) as ``(variant, seed)``."""
    last = int(model["step"].values[-1])
    return per_seed(model, "transmitted_bits", {"step": last if step == "last" else int(step)})


def summary(values, statistic: str, label: str, *, ci_level: float, null: float | None = None,
            extra: dict | None = None) -> StatResult:
    """A seed summary (Student t); where no seed has a finite value, a result that says so."""
    values = np.asarray(values, dtype=float)
    finite = int(np.isfinite(values).sum())
    extra = {"label": label, "n_unit": "seeds", "n_seeds_finite": finite, **(extra or {})}
    if finite == 0:
        return StatResult(statistic=statistic, estimate=math.nan, n=0, method=f"no seed of {values.size} has a value",
                          extra={**extra, "label": f"{label}: no seed of {values.size}"})
    if finite < values.size:
        extra["label"] = f"{label} ({finite} of {values.size} seeds; the others never did)"
    return seed_summary(values, statistic=statistic, ci_level=ci_level, null=null, extra=extra)


def difference(first, second, statistic: str, label: str, *, ci_level: float, extra: dict | None = None):
    """Paired difference over seeds (first - second), or None where no seed has both values."""
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if not np.isfinite(first - second).any():
        return None
    return seed_difference(first, second, statistic=statistic, ci_level=ci_level, paired=True,
                           extra={"label": label, **(extra or {})})


def curves_figure(model: xr.Dataset, variants: list[str], names: list[str], *, ci_level: float, title: str,
                  caption: str, annotation: str = "") -> xr.Dataset:
    """Information curves ``I(X; C_1..t)`` of some variants: mean over seeds per step, Student t band."""
    bits = model["transmitted_bits"].sel(variant=variants).transpose("variant", "seed", "step").values.astype(float)
    steps = model["step"].values.astype(float)
    mean, low, high = (np.full((len(variants), steps.size), np.nan) for _ in range(3))
    for i in range(len(variants)):
        for t in range(steps.size):
            column = bits[i, :, t]
            if np.isfinite(column).any():
                result = seed_summary(column, statistic="transmitted_bits", ci_level=ci_level)
                mean[i, t], low[i, t], high[i, t] = result.estimate, result.ci_low, result.ci_high
    low, high = np.where(np.isfinite(low), low, mean), np.where(np.isfinite(high), high, mean)
    return xr.Dataset(
        {"y": (("series", "x"), mean), "y_low": (("series", "x"), low), "y_high": (("series", "x"), high)},
        coords={"series": np.array(names, dtype=str), "x": steps},
        attrs={"figure": "lines", "title": title, "x_label": "step", "y_label": "I(X; codes so far) [bits]",
               "caption": caption, "annotation": annotation})
