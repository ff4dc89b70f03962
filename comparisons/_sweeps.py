"""Helpers for comparisons of a swept model with itself (its variants along ``variant``): not a plug-in."""

from __future__ import annotations

import numpy as np
import xarray as xr

from brainres.comparisons._common import ComparisonError, require_variable
from brainres.stats import seed_summary


def per_seed(model: xr.Dataset, measure: str, select: dict | None = None) -> xr.DataArray:
    """A measure as ``(variant, seed)``, after selecting along its other dimensions (e.g. ``{"step": 1}``)."""
    if "variant" not in model.dims:
        raise ComparisonError("this comparison takes a swept model (variants along 'variant'); "
                              "the export has no 'variant' dimension")
    require_variable(model, measure)
    values = model[measure]
    for dim, value in (select or {}).items():
        if dim not in values.dims:
            raise ComparisonError(f"{measure!r} has no dimension {dim!r} to select (it has {list(values.dims)})")
        values = values.sel({dim: value})
    extra = set(values.dims) - {"variant", "seed"}
    if extra:
        raise ComparisonError(f"{measure!r} still has dimension(s) {sorted(extra)} besides variant and seed; "
                              f"pick one value of each with select = {{{', '.join(f'{d} = ...' for d in sorted(extra))}}}")
    return values.transpose("variant", "seed").astype(float)


def variant_tags(model: xr.Dataset, variant) -> dict:
    """The tags of one variant (its coordinates along ``variant``), as plain values."""
    tags = {}
    for name, coord in model.coords.items():
        if coord.dims == ("variant",) and name != "variant":
            value = coord.sel(variant=variant).item()
            tags[name] = value.item() if hasattr(value, "item") else value
    return tags


def summaries(values: xr.DataArray, measure: str, *, ci_level: float, model: xr.Dataset) -> list:
    """One seed summary per variant, labelled with its tags."""
    results = []
    for variant in values["variant"].values:
        row = values.sel(variant=variant).values
        results.append(seed_summary(row, statistic=measure, ci_level=ci_level,
                                    extra={"variant": str(variant), "label": f"{variant}: {measure.replace('_', ' ')}",
                                           **{f"tag_{k}": v for k, v in variant_tags(model, variant).items()}}))
    return results


def lines_figure(results: list, x: np.ndarray, *, title: str, x_label: str, y_label: str, caption: str,
                 annotation: str = "") -> xr.Dataset:
    """A lines figure of per-variant means with their intervals."""
    return xr.Dataset(
        {"y": ("x", [r.estimate for r in results]), "y_low": ("x", [r.ci_low for r in results]),
         "y_high": ("x", [r.ci_high for r in results])},
        coords={"x": np.asarray(x, dtype=float)},
        attrs={"figure": "lines", "title": title, "x_label": x_label, "y_label": y_label, "caption": caption,
               "annotation": annotation})
