"""Writing a large dataset to netCDF piece by piece (for exports).

An export of 10,000 stimuli x seeds x occlusion levels x steps (and latent
states) need not fit in memory: :class:`StreamingWriter` creates the file with
every coordinate and attribute up front, takes the data in slices as they are
computed, and only when closed validates the file and renames it into place.
Until then the target path is untouched; a failure removes the partial file,
and one left by a killed process carries :data:`brainres.data.io.TEMP_TAG` in
its name so that the next run of the folder removes it. The finished file gets
the permissions the user's umask allows.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5netcdf
import numpy as np
import xarray as xr

from brainres.data.io import (
    ENGINE, _encode_attrs, _writing, apply_umask, encode_for_netcdf, open_netcdf, temporary_file,
)
from brainres.errors import BrainresError


class StreamingWriter:
    """Write a netCDF file in slices, atomically.

    Parameters
    ----------
    path : path
        Final location; written only by :meth:`close`.
    coords : xarray.Dataset
        A dataset holding the coordinates (and attributes) of the final file;
        its data variables, if any, are written as they are.
    variables : dict
        name -> ``(dims, dtype, attrs)`` of the variables filled later with
        :meth:`write`. Float variables start as NaN. Integer and boolean ones
        have no fill value (xarray would turn it into a float mask), so the
        caller writes them in full.
    validate_kind : str, optional
        Data-model kind checked (lazily opened) before the rename.

    Examples
    --------
    >>> with StreamingWriter(path, coords, {"x": (("stimulus_id",), "float32", {})}) as out:  # doctest: +SKIP
    ...     out.write("x", {"stimulus_id": slice(0, 100)}, values)
    """

    def __init__(self, path, coords: xr.Dataset, variables: dict, validate_kind: str | None = None):
        self.path = Path(path)
        self.validate_kind = validate_kind
        self.tmp = temporary_file(self.path.parent, self.path.name, ".nc")
        self._file = None
        self._dims = dict(coords.sizes)
        self._variables = {}
        try:
            with _writing(self.path):
                encode_for_netcdf(coords).to_netcdf(self.tmp, engine=ENGINE, mode="w")
                self._file = h5netcdf.File(self.tmp, "a")
            for name, (dims, dtype, attrs) in variables.items():
                missing = [d for d in dims if d not in self._dims]
                if missing:
                    raise BrainresError(f"variable {name!r} uses dimension(s) {missing} that have no coordinate")
                self._create(name, tuple(dims), np.dtype(dtype), dict(attrs or {}))
        except BaseException:
            self._discard()
            raise

    def _create(self, name, dims, dtype, attrs):
        if dtype == np.bool_:
            stored, fill = np.dtype("int8"), None  # a fill of 0 would be read back as missing
            attrs["dtype"] = "bool"  # xarray's convention: decoded back to bool
        elif dtype.kind == "f":
            stored, fill = dtype, np.nan
        else:
            stored, fill = dtype, None
        variable = self._file.create_variable(name, dims, stored, fillvalue=fill)
        for key, value in _encode_attrs(attrs).items():
            variable.attrs[key] = value
        self._variables[name] = (dims, stored)

    def write(self, name: str, where: dict, values) -> None:
        """Write ``values`` into ``name`` at ``where`` (dim -> slice or int; others whole)."""
        dims, stored = self._variables[name]
        unknown = set(where) - set(dims)
        if unknown:
            raise BrainresError(f"variable {name!r} has no dimension(s) {sorted(unknown)}")
        index = tuple(where.get(d, slice(None)) for d in dims)
        with _writing(self.path):
            self._file.variables[name][index] = np.asarray(values).astype(stored)

    def add(self, name: str, dims, values, attrs: dict | None = None) -> None:
        """Create a variable and write it whole (for small per-seed summaries)."""
        values = np.asarray(values)
        self._create(name, tuple(dims), values.dtype, dict(attrs or {}))
        self.write(name, {}, values)

    def close(self) -> Path:
        """Finish: validate the file and move it into place."""
        try:
            with _writing(self.path):
                self._file.close()
            if self.validate_kind:
                from brainres.data.schema import validate

                with open_netcdf(self.tmp) as written:
                    validate(written, self.validate_kind, source=str(self.path))
            with _writing(self.path):
                with open(self.tmp, "rb") as written:
                    os.fsync(written.fileno())
                apply_umask(self.tmp)
                os.replace(self.tmp, self.path)
        except BaseException:
            self._discard()
            raise
        return self.path

    def _discard(self):
        try:
            if self._file is not None:
                self._file.close()
        except Exception:  # already closed
            pass
        if self.tmp.exists():
            self.tmp.unlink()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self._discard()
        return False
