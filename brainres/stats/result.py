"""The result object every statistic in :mod:`brainres.stats` returns.

A :class:`StatResult` says what was estimated, the estimate, its interval and
how the interval was obtained (method, number of resamples, seed, which
factors were resampled). It turns into a table row (:meth:`StatResult.to_row`)
and, for a list of results, into a tidy table (:func:`results_table`) or an
:class:`xarray.Dataset` (:func:`results_to_dataset`) that
``brainres.data.write_netcdf`` can store.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

# Columns every table row has, in this order; `extra` entries follow.
ROW_FIELDS = (
    "statistic",
    "estimate",
    "ci_low",
    "ci_high",
    "ci_level",
    "interval",
    "method",
    "p_value",
    "n",
    "n_resamples",
    "seed",
    "resampled",
)


@dataclasses.dataclass(frozen=True)
class StatResult:
    """One estimate with its uncertainty and a record of how it was obtained.

    Attributes
    ----------
    statistic : str
        What was estimated, e.g. ``"spearman"`` or ``"split_half_reliability"``.
    estimate : float
        The point estimate on the full data.
    ci_low, ci_high : float
        Interval bounds (NaN when no interval was computed).
    ci_level : float
        Coverage of the interval, e.g. 0.95 (NaN when none).
    interval : str
        How the interval was formed: ``"percentile"``, ``"bca"``,
        ``"fisher_z"``, ``"wald"``, ... (``""`` when none).
    method : str
        How the estimate and its uncertainty were computed, e.g.
        ``"crossed bootstrap (seed x stimulus), dual-bootstrap variance correction"``.
    p_value : float
        NaN when no test was run.
    n : int
        Number of observations the estimate rests on (usually stimuli).
    n_resamples : int
        Bootstrap resamples or permutations drawn (0 when none).
    seed : int or None
        The integer seed of the random draws; None when a ready
        ``numpy.random.Generator`` was passed or nothing was drawn.
    resampled : tuple of str
        The factors resampled, e.g. ``("seed", "stimulus")``.
    extra : dict
        Further named scalars (e.g. ``{"ceiling": 0.8}``); they become columns.
    distribution : numpy.ndarray or None
        The bootstrap/permutation distribution, kept only when asked for.
    """

    statistic: str
    estimate: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    ci_level: float = math.nan
    interval: str = ""
    method: str = ""
    p_value: float = math.nan
    n: int | None = None
    n_resamples: int = 0
    seed: int | None = None
    resampled: tuple[str, ...] = ()
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    distribution: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    def replace(self, **changes) -> "StatResult":
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_row(self) -> dict[str, Any]:
        """The result as one flat table row (a dict); ``extra`` entries become columns."""
        row = {name: getattr(self, name) for name in ROW_FIELDS}
        row["resampled"] = "+".join(self.resampled)
        clash = set(self.extra) & set(row)
        if clash:
            raise ValueError(f"extra keys {sorted(clash)} clash with standard result columns")
        row.update(self.extra)
        return row

    def to_frame(self) -> pd.DataFrame:
        """The result as a one-row :class:`pandas.DataFrame`."""
        return results_table([self])

    def to_xarray(self) -> xr.Dataset:
        """The result as a dataset with a length-1 ``result`` dimension."""
        return results_to_dataset([self])

    def _repr_html_(self) -> str:
        """In a notebook: the APA-style sentence, then the full row."""
        from brainres.report.text import apa_sentence

        unit = str(self.extra.get("n_unit", "stimuli"))
        label = html.escape(str(self.extra.get("label", self.statistic)))
        return f"<p><b>{label}</b>: {apa_sentence(self, unit=unit)}</p>" + self.to_frame().to_html(index=False)


def results_table(results) -> pd.DataFrame:
    """A tidy table with one row per result (pingouin-like).

    Parameters
    ----------
    results : iterable of StatResult

    Returns
    -------
    pandas.DataFrame
        Standard columns first (:data:`ROW_FIELDS`), then any ``extra`` columns.
    """
    rows = [r.to_row() for r in results]
    table = pd.DataFrame(rows)
    extra = [c for c in table.columns if c not in ROW_FIELDS]
    return table[[*ROW_FIELDS, *extra]] if rows else pd.DataFrame(columns=list(ROW_FIELDS))


def results_to_dataset(results, include_distribution: bool = True) -> xr.Dataset:
    """Turn results into an :class:`xarray.Dataset` along a ``result`` dimension.

    Numbers become float/int variables, text becomes string variables, and
    ``extra`` entries that are not scalars are stored as JSON text. When any
    result kept its distribution (and ``include_distribution``), a variable
    ``distribution`` of dims ``(result, resample)`` holds them, NaN-padded.

    Parameters
    ----------
    results : iterable of StatResult
    include_distribution : bool, default True

    Returns
    -------
    xarray.Dataset
        Can be written with ``brainres.data.write_netcdf``.
    """
    results = list(results)
    table = results_table(results)
    data_vars = {}
    for column in table.columns:
        values = table[column].tolist()
        if column in ("seed", "n"):
            # netCDF has no "missing integer"; -1 marks "not recorded".
            data_vars[column] = ("result", np.array([_int_or_missing(getattr(r, column)) for r in results], dtype=np.int64))
        elif all(isinstance(v, (bool, np.bool_)) for v in values):
            data_vars[column] = ("result", np.array(values, dtype=bool))
        elif all(_is_number(v) for v in values):
            data_vars[column] = ("result", np.array(values, dtype=float))
        else:
            data_vars[column] = ("result", np.array([_as_text(v) for v in values], dtype=object))
    ds = xr.Dataset(data_vars, coords={"result": np.arange(len(results))})
    if include_distribution and any(r.distribution is not None for r in results):
        longest = max(np.size(r.distribution) for r in results if r.distribution is not None)
        stacked = np.full((len(results), longest), np.nan)
        for i, r in enumerate(results):
            if r.distribution is not None:
                flat = np.ravel(r.distribution)
                stacked[i, : flat.size] = flat
        ds["distribution"] = (("result", "resample"), stacked)
    ds["seed"].attrs["description"] = "integer seed of the random draws; -1 if none was recorded"
    ds["n"].attrs["description"] = "number of observations; -1 if not recorded"
    ds.attrs["description"] = "brainres.stats results, one per entry of dimension 'result'"
    return ds


def _int_or_missing(value) -> int:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return -1
    return int(value)


def _is_number(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if value is None:
        return True  # becomes NaN
    return isinstance(value, (int, float, np.integer, np.floating))


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    except TypeError:
        return str(value)
