"""Helpers shared by the plasticity family's headline comparisons (not a plug-in)."""

from __future__ import annotations

import numpy as np
import xarray as xr
from brainres.comparisons._common import ComparisonError

from brainres.stats import seed_summary
from brainres.stats.seeds import SeedSummaryError


def require(model: xr.Dataset, comparison: str, variables=(), coords=()) -> None:
    """Say what a plasticity headline needs when the combined export lacks it."""
    if "variant" not in model.dims:
        raise ComparisonError(f"{comparison} takes a swept plasticity model (variants along 'variant')")
    missing = [v for v in variables if v not in model] + [c for c in coords if c not in model.coords]
    if missing:
        raise ComparisonError(f"{comparison} needs {missing} in the export; it has variables "
                              f"{sorted(model.data_vars)} and variant coordinates "
                              f"{sorted(c for c, v in model.coords.items() if v.dims == ('variant',))}")


def coordinate(model: xr.Dataset, name: str, variant) -> object:
    """One variant's value of a coordinate along ``variant`` (a plain value)."""
    value = model[name].sel(variant=variant).item()
    return value.item() if hasattr(value, "item") else value


def summary(values, statistic: str, *, ci_level: float, label: str, null: float | None = None, **extra):
    """:func:`brainres.stats.seed_summary` of one arm's per-seed values, labelled for the report."""
    return seed_summary(np.asarray(values, dtype=float), statistic=statistic, ci_level=ci_level, null=null,
                        extra={"label": label, **extra})


def banded_lines(curves: dict, x: np.ndarray, *, ci_level: float, title: str, x_label: str, y_label: str,
                 caption: str, annotation: str = "") -> xr.Dataset:
    """A ``lines`` figure: one series per curve (``(seed, x)`` values), mean over seeds with a t band.

    The band at each ``x`` is the :func:`~brainres.stats.seed_summary` interval of the seeds' values there.
    """
    names = list(curves)
    y = np.full((len(names), len(x)), np.nan)
    low, high = y.copy(), y.copy()
    for i, name in enumerate(names):
        values = np.asarray(curves[name], dtype=float)
        for j in range(len(x)):
            try:
                result = seed_summary(values[:, j], ci_level=ci_level)
            except SeedSummaryError:  # no seed reached this point (e.g. after the end of training)
                continue
            y[i, j], low[i, j], high[i, j] = result.estimate, result.ci_low, result.ci_high
    return xr.Dataset({"y": (("series", "x"), y), "y_low": (("series", "x"), low), "y_high": (("series", "x"), high)},
                      coords={"series": np.array(names, dtype=str), "x": np.asarray(x, dtype=float)},
                      attrs={"figure": "lines", "title": title, "x_label": x_label, "y_label": y_label,
                             "caption": caption, "annotation": annotation})
