"""Model measures computed outside brainres, as a ``model_measures`` dataset.

:func:`read_measures` reads either a netCDF file written by brainres (or any
tool following ``docs/data-model.md``) or a long-format table: one row per
``seed`` x ``stimulus_id`` [x ``occlusion``] and one column per measure. The
table must be complete (every seed has every stimulus, at every occlusion
level) and every cell a finite number; errors name the column, the data rows
and the stimulus.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from brainres.data.io import read_netcdf
from brainres.data.readers import read_table
from brainres.data.schema import MODEL_VARIABLES, validate
from brainres.data.trials import _rows
from brainres.errors import DataFileError

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".txt")
KEYS = ("seed", "stimulus_id", "occlusion")
UNKNOWN_TRAINING_DATA = "unknown (precomputed measures)"


def _listing(items, limit: int = 5) -> str:
    items = list(dict.fromkeys(str(item) for item in items))  # unique, in order
    more = len(items) - limit
    return ", ".join(repr(i) for i in items[:limit]) + (f" (and {more} more)" if more > 0 else "")


def _seeds(path: Path, text: np.ndarray) -> np.ndarray:
    seed = pd.to_numeric(pd.Series(text), errors="coerce").to_numpy(float)
    bad = ~np.isfinite(seed) | (seed < 0) | (seed != np.round(seed))
    if bad.any():
        raise DataFileError(path, f"column 'seed' must hold non-negative integers; bad value(s) "
                                  f"{_listing(text[bad])} in data row(s) {_rows(bad)}")
    return seed.astype(np.int64)


def _occlusions(path: Path, text: np.ndarray) -> np.ndarray:
    occlusion = pd.to_numeric(pd.Series(text), errors="coerce").to_numpy(float)
    bad = ~np.isfinite(occlusion) | (occlusion < 0) | (occlusion > 1)
    if bad.any():
        raise DataFileError(path, f"column 'occlusion' must hold fractions in [0, 1]; bad value(s) "
                                  f"{_listing(text[bad])} in data row(s) {_rows(bad)}")
    return occlusion


def _measure(path: Path, name: str, text: np.ndarray, stimulus: np.ndarray) -> np.ndarray:
    """One measure column as floats; every cell must be a finite number."""
    values = pd.to_numeric(pd.Series(text), errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values)
    if bad.any():
        first = np.flatnonzero(bad)[0]
        cell, value = str(text[first]), values[first]
        if cell == "":
            what = "an empty cell"
        elif np.isinf(value):
            what = f"an infinite value ({cell!r})"
        elif cell.lower().lstrip("+-") == "nan":
            what = f"a NaN value ({cell!r})"
        else:
            what = f"a non-numeric value ({cell!r})"
        raise DataFileError(path, f"column {name!r} must hold finite numbers; it has {what} in data row(s) "
                                  f"{_rows(bad)}, stimulus {_listing(stimulus[bad])}")
    return values


def _measure_names(path: Path, columns: list[str]) -> list[str]:
    missing = [name for name in KEYS[:2] if name not in columns]
    if missing:
        raise DataFileError(path, f"missing column(s) {missing}; the file has columns {columns}")
    names = [name for name in columns if name not in KEYS]
    if not names:
        raise DataFileError(path, "no measure columns: besides 'seed', 'stimulus_id' (and 'occlusion') the "
                                  f"table needs at least one column of per-stimulus values; it has {columns}")
    if "" in names:
        raise DataFileError(path, f"column {columns.index('') + 1} has no name in the header")
    # these names mean one value per recurrent step in brainres, which a table cannot hold
    reserved = [name for name in names if name in MODEL_VARIABLES and MODEL_VARIABLES[name]]
    if reserved:
        raise DataFileError(path, f"column(s) {reserved} have a fixed per-step meaning in brainres "
                                  "(docs/data-model.md); rename them, e.g. 'final_correct'")
    return names


def _grid(path: Path, keys: dict[str, np.ndarray]):
    """Coordinates and the flat position of each row in the full seed x stimulus [x occlusion] grid."""
    stimulus_codes, stimuli = pd.factorize(keys["stimulus_id"])  # order of first appearance
    coords = {"seed": np.unique(keys["seed"]), "stimulus_id": np.asarray(stimuli, dtype=str)}
    codes = [np.searchsorted(coords["seed"], keys["seed"]), stimulus_codes]
    if "occlusion" in keys:
        coords["occlusion"] = np.unique(keys["occlusion"])
        codes.append(np.searchsorted(coords["occlusion"], keys["occlusion"]))
    shape = tuple(len(values) for values in coords.values())
    position = np.ravel_multi_index(codes, shape)

    def describe(index) -> str:
        parts = [f"seed {coords['seed'][index[0]]}", f"stimulus {str(coords['stimulus_id'][index[1]])!r}"]
        if "occlusion" in coords:
            parts.append(f"occlusion {coords['occlusion'][index[2]]:g}")
        return ", ".join(parts)

    dims = "(" + ", ".join(coords) + ")"
    counts = np.bincount(position, minlength=int(np.prod(shape)))
    repeated = counts[position] > 1
    if repeated.any():
        example = np.unravel_index(position[repeated][0], shape)
        raise DataFileError(path, f"{int(repeated.sum())} rows repeat a {dims} combination, e.g. "
                                  f"{describe(example)}, in data row(s) {_rows(repeated)}")
    if (counts == 0).any():
        example = np.unravel_index(np.flatnonzero(counts == 0)[0], shape)
        raise DataFileError(path, f"{int((counts == 0).sum())} {dims} combination(s) have no row, e.g. "
                                  f"{describe(example)}; every seed needs a row for every stimulus"
                                  + (" at every occlusion level" if "occlusion" in coords else ""))
    return coords, shape, position


def measures_from_table(table: pd.DataFrame, *, source) -> xr.Dataset:
    """Turn a long table (string cells) of per-stimulus measures into variables on a full grid.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``seed``, ``stimulus_id``, optional ``occlusion``, and one
        column per measure; cells as strings (:func:`~brainres.data.readers.read_table`).
    source : str or Path
        Named in every error.

    Returns
    -------
    xarray.Dataset
        One float variable per measure with dims ``(seed, stimulus_id[, occlusion])``;
        no attributes (the caller adds the provenance).
    """
    source = Path(source)
    names = _measure_names(source, list(table.columns))
    if len(table) == 0:
        raise DataFileError(source, "the table has no rows")
    text = {name: table[name].astype(str).str.strip().to_numpy(dtype=str) for name in table.columns}
    stimulus = text["stimulus_id"]
    empty = stimulus == ""
    if empty.any():
        raise DataFileError(source, f"column 'stimulus_id' is empty in data row(s) {_rows(empty)}")
    keys = {"seed": _seeds(source, text["seed"]), "stimulus_id": stimulus}
    if "occlusion" in text:
        keys["occlusion"] = _occlusions(source, text["occlusion"])
    measures = {name: _measure(source, name, text[name], stimulus) for name in names}
    coords, shape, position = _grid(source, keys)
    data = {}
    for name, values in measures.items():
        full = np.empty(int(np.prod(shape)))
        full[position] = values  # the grid is complete and duplicate-free: every cell set once
        data[name] = (tuple(coords), full.reshape(shape))
    return xr.Dataset(data, coords=coords)


def read_measures(path, *, sep: str | None = None, training_data: str | None = None,
                  model_name: str | None = None) -> xr.Dataset:
    """Read per-stimulus model measures computed outside brainres.

    Parameters
    ----------
    path : str or Path
        A ``.nc`` file in the ``model_measures`` format (read and validated as
        is), or a ``.csv``/``.tsv``/``.txt`` table with columns ``seed``
        (non-negative integers), ``stimulus_id``, optional ``occlusion``
        (fractions in [0, 1]) and one column per measure (finite numbers),
        one row per seed x stimulus [x occlusion level], all present exactly once.
    sep : str, optional
        Field separator of a table; default tab for ``.tsv``/``.tab``, else comma.
    training_data : str, optional
        What the model was trained on (attribute ``training_data``); for a
        table it defaults to ``"unknown (precomputed measures)"``.
    model_name : str, optional
        Stored as attribute ``model_name``. Either argument, when given,
        replaces the attribute of a ``.nc`` file.

    Returns
    -------
    xarray.Dataset
        Kind ``model_measures``. From a table: one float variable per measure
        column with dims ``(seed, stimulus_id[, occlusion])``, stimuli in order
        of first appearance, seeds and occlusion levels ascending; attributes
        ``model_family="precomputed"``, ``pressures={}``, ``config_hash`` (the
        SHA-256 of the file), ``brainres_version``, ``training_data``,
        ``source_file``, ``stimulus_set=""`` and ``model_name`` when given.

    Raises
    ------
    DataFileError
        Naming the file and, for a table, the column, data rows and stimulus:
        missing columns, no measure column, bad seeds or occlusion levels,
        non-numeric, empty, NaN or infinite cells, duplicate or missing
        (seed, stimulus[, occlusion]) combinations.

    Examples
    --------
    >>> model = read_measures("resnet_rt_proxy.csv", model_name="resnet50",
    ...                       training_data="imagenet")  # doctest: +SKIP
    """
    given = path
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".nc":
        ds = read_netcdf(path, validate_kind="model_measures")
    elif suffix in TABLE_SUFFIXES:
        ds = measures_from_table(read_table(path, sep=sep), source=path)
        ds.attrs.update(_table_provenance(path, given))
    else:
        raise DataFileError(path, f"unknown file type {suffix or '(no extension)'!r}; expected .nc or a table "
                                  f"({', '.join(TABLE_SUFFIXES)})")
    if training_data is not None:
        ds.attrs["training_data"] = training_data
    elif suffix != ".nc":
        ds.attrs["training_data"] = UNKNOWN_TRAINING_DATA
    if model_name is not None:
        ds.attrs["model_name"] = model_name
    return validate(ds, "model_measures", source=str(path))


def _table_provenance(path: Path, given) -> dict:
    import brainres  # at call time: brainres imports this module while it is being set up

    return {
        "brainres_kind": "model_measures",
        "model_family": "precomputed",
        "pressures": {},
        "config_hash": hashlib.sha256(path.read_bytes()).hexdigest(),
        "brainres_version": brainres.__version__,
        "source_file": str(given),
        "stimulus_set": "",
    }
