"""Saving and loading comparison results in a run folder (JSON + netCDF figure data)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from brainres.compare import ComparisonResult
from brainres.data.io import atomic_write_text, read_netcdf, write_netcdf
from brainres.stats.result import StatResult

RESULT_FILE = "result.json"
_FIELDS = {f.name for f in dataclasses.fields(StatResult)} - {"extra", "distribution"}


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def save_result(result: ComparisonResult, folder) -> Path:
    """Write figure data as netCDF, then the results as JSON (last: it marks completion)."""
    folder = Path(folder)
    figures = {}
    for name, figure in result.figures.items():
        file = f"figure_{name}.nc"
        write_netcdf(figure, folder / file)
        figures[name] = file
    rows = []
    for stat in result.results:
        row = {name: _clean(getattr(stat, name)) for name in _FIELDS}
        row["resampled"] = list(stat.resampled)
        row["extra"] = {k: _clean(v) for k, v in stat.extra.items()}
        rows.append(row)
    record = {"comparison": result.comparison, "title": result.title, "results": rows, "figures": figures,
              "methods": result.methods, "notes": result.notes, "inputs": result.inputs}
    return atomic_write_text(folder / RESULT_FILE, json.dumps(record, indent=2, default=str))


def load_result(folder) -> ComparisonResult:
    folder = Path(folder)
    record = json.loads((folder / RESULT_FILE).read_text())
    results = []
    for row in record["results"]:
        values = {k: (math.nan if v is None and k in ("ci_low", "ci_high", "ci_level", "p_value") else v)
                  for k, v in row.items() if k in _FIELDS}
        values["resampled"] = tuple(row.get("resampled", ()))
        results.append(StatResult(**values, extra=row.get("extra", {})))
    figures = {name: read_netcdf(folder / file) for name, file in record["figures"].items()}
    return ComparisonResult(comparison=record["comparison"], title=record["title"], results=results,
                            figures=figures, methods=record["methods"], notes=record["notes"], inputs=record["inputs"])


def results_frame(results):
    """All comparisons' tables, stacked."""
    import pandas as pd

    tables = [r.table() for r in results]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


__all__ = ["load_result", "results_frame", "save_result"]
