"""Reading and writing brainres datasets: netCDF round trips and atomic writes.

Only this package touches files. Writes go to a temporary file in the target's
folder and are renamed over the target once complete, so a crash or a bad
input never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from brainres.errors import DataFileError

# netCDF attributes can hold strings and numbers (and 1-d arrays of them).
# Anything richer (dicts, lists of records, booleans, None) is stored as JSON
# text and its name listed here, so reading restores the original value.
_JSON_ATTRS = "brainres_json_attrs"
# pandas categorical coordinates lose their category order in netCDF; we keep it.
_CATEGORIES = "brainres_categories"

ENGINE = "h5netcdf"


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=suffix or ".tmp"
    )
    os.close(handle)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _encode_attrs(attrs: dict) -> dict:
    encoded, as_json = {}, []
    for name, value in attrs.items():
        if isinstance(value, (str, int, float, np.integer, np.floating)) and not isinstance(value, bool):
            encoded[name] = value
        elif isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iuf":
            encoded[name] = value
        else:
            try:
                encoded[name] = json.dumps(value, default=_json_default)
            except TypeError as err:
                raise TypeError(f"attribute {name!r} cannot be stored: {err}") from None
            as_json.append(name)
    if as_json:
        encoded[_JSON_ATTRS] = json.dumps(as_json)
    return encoded


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _decode_attrs(attrs: dict) -> dict:
    attrs = dict(attrs)
    names = json.loads(attrs.pop(_JSON_ATTRS, "[]"))
    for name in names:
        attrs[name] = json.loads(attrs[name])
    return attrs


def encode_for_netcdf(ds: xr.Dataset) -> xr.Dataset:
    """Return a copy of ``ds`` that netCDF can store without loss.

    Object and pandas string arrays become fixed unicode arrays, categorical
    coordinates keep their category order in an attribute, rich attributes
    become JSON.
    """
    ds = ds.copy()
    for name in list(ds.variables):
        var = ds[name].variable
        attrs = dict(var.attrs)
        index = ds.indexes.get(name) if name in ds.dims else None
        if index is not None and isinstance(index, pd.CategoricalIndex):
            attrs[_CATEGORIES] = [str(c) for c in index.categories]
        if isinstance(var.dtype, pd.CategoricalDtype):
            attrs[_CATEGORIES] = [str(c) for c in var.dtype.categories]
        data = var.values
        if data.dtype.kind == "O" or isinstance(var.dtype, pd.CategoricalDtype):
            data = _strings(np.asarray(data), name)
        elif data.dtype.kind == "T":  # numpy StringDType (pandas 3 strings)
            data = data.astype(str)
        ds[name] = xr.Variable(var.dims, data, _encode_attrs(attrs))
    ds.attrs = _encode_attrs(ds.attrs)
    return ds


def _strings(values: np.ndarray, name) -> np.ndarray:
    flat = values.ravel()
    bad = [v for v in flat if not isinstance(v, str)]
    if bad:
        raise TypeError(
            f"variable {name!r} mixes strings with {type(bad[0]).__name__} values "
            f"(for example {bad[0]!r}); use '' for a missing string"
        )
    return values.astype(str)


def decode_from_netcdf(ds: xr.Dataset) -> xr.Dataset:
    """Undo :func:`encode_for_netcdf` on a dataset read from disk."""
    for name in list(ds.variables):
        attrs = _decode_attrs(ds[name].attrs)
        categories = attrs.pop(_CATEGORIES, None)
        ds[name].attrs = attrs
        if categories is None:
            continue
        values = pd.Categorical(ds[name].values.astype(str), categories=categories)
        if name in ds.dims:
            ds = ds.assign_coords({name: pd.CategoricalIndex(values, name=name)})
        elif name in ds.coords:
            ds = ds.assign_coords({name: (ds[name].dims, values, attrs)})
        else:
            ds[name] = (ds[name].dims, values, attrs)
    ds.attrs = _decode_attrs(ds.attrs)
    return ds


def write_netcdf(ds: xr.Dataset, path, validate_kind: str | None = None) -> Path:
    """Validate (when the kind is known) and write ``ds`` atomically to ``path``.

    The kind is ``validate_kind`` or the dataset's ``brainres_kind`` attribute.
    Nothing is written when validation fails.
    """
    from brainres.data.schema import validate  # schema depends on io, not the reverse

    kind = validate_kind or ds.attrs.get("brainres_kind")
    if kind:
        validate(ds, kind, source=str(path))
    encoded = encode_for_netcdf(ds)
    with atomic_path(path, suffix=".nc") as tmp:
        encoded.to_netcdf(tmp, engine=ENGINE)
    return Path(path)


def read_netcdf(path, validate_kind: str | None = None) -> xr.Dataset:
    """Read a dataset written by :func:`write_netcdf` fully into memory."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(path, "no such file")
    try:
        with xr.open_dataset(path, engine=ENGINE) as opened:
            ds = opened.load()
    except (OSError, ValueError) as err:
        raise DataFileError(path, f"not a readable netCDF file ({err})") from None
    ds = decode_from_netcdf(ds)
    kind = validate_kind or ds.attrs.get("brainres_kind")
    if kind:
        from brainres.data.schema import validate

        validate(ds, kind, source=str(path))
    return ds


def open_netcdf(path) -> xr.Dataset:
    """Open a dataset lazily (for exports too large for memory); attrs decoded."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(path, "no such file")
    return decode_from_netcdf(xr.open_dataset(path, engine=ENGINE))


def open_netcdf_many(paths, concat_dim: str) -> xr.Dataset:
    """Open several files of one kind lazily as one dataset, concatenated along ``concat_dim``.

    Only variables that have ``concat_dim`` are concatenated; the others (and
    the attributes) are taken from the first file. Data stay on disk until a
    computation needs them (dask arrays), so combining many exports does not
    need memory for all of them.
    """
    paths = [Path(p) for p in paths]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise DataFileError(missing[0], "no such file")
    combined = xr.open_mfdataset(
        paths, engine=ENGINE, combine="nested", concat_dim=concat_dim, data_vars="minimal", coords="minimal",
        compat="override", combine_attrs="override", join="exact",
    )
    return decode_from_netcdf(combined)
