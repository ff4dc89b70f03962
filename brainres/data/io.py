"""Reading and writing brainres datasets: netCDF round trips and atomic writes.

Only this package touches files. Writes go to a temporary file in the target's
folder and are renamed over the target once complete, so a crash or a bad
input never leaves a half-written file behind. Temporary files carry
:data:`TEMP_TAG` in their name, so one left by a killed process is recognised
(and removed by the next run of the same folder, :func:`remove_temporaries`).
Written files get the permissions the user's umask allows (like any file the
user creates), not the 0600 of a temporary file. A folder that cannot be
written (permissions, read-only file system, full disk, quota) is reported as
a :class:`WriteError` naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from brainres.errors import BrainresError, DataFileError

# netCDF attributes can hold strings and numbers (and 1-d arrays of them).
# Anything richer (dicts, lists of records, booleans, None) is stored as JSON
# text and its name listed here, so reading restores the original value.
_JSON_ATTRS = "brainres_json_attrs"
# pandas categorical coordinates lose their category order in netCDF; we keep it.
_CATEGORIES = "brainres_categories"

ENGINE = "h5netcdf"
# netCDF3 (classic and 64-bit offset) files are not HDF5: h5netcdf cannot read them.
_NETCDF3_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")

# Every temporary file of an atomic write is named ".<target>.<random>.brainres-tmp<suffix>".
TEMP_TAG = ".brainres-tmp"
# Names of temporary files written before TEMP_TAG existed (".<target>.<8 random><suffix>").
_LEGACY_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}(\.tmp|\.nc|\.pt|\.csv)$")


class WriteError(DataFileError):
    """A file or folder cannot be written: no permission, read-only file system, disk full or quota exceeded."""

    def __init__(self, path, problem: str):
        super().__init__(path, problem)

    def __reduce__(self):  # picklable (Dask sends a worker's errors back to the client)
        return (type(self), (self.path, self.problem))


_OS_PROBLEMS = {
    errno.EACCES: "permission denied (the folder or file is not writable by you)",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device (the disk is full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "file name too long",
}


def os_problem(err: OSError) -> str:
    """A plain-words account of an :class:`OSError` (permission, read-only, disk full...)."""
    words = _OS_PROBLEMS.get(err.errno)
    if words is None:
        words = err.strerror or str(err)
    return words


def os_error_path(err: OSError, default=None) -> str:
    """The path an :class:`OSError` is about (its filename, else ``default``)."""
    name = err.filename if err.filename is not None else default
    return str(name) if name is not None else "?"


def _writing(path: Path):
    """A context that turns an :class:`OSError` while writing ``path`` into a :class:`WriteError`."""
    return _WriteErrors(path)


# Below this many free bytes, a failed write is taken to be the full disk's doing (libraries such as
# torch and HDF5 report a full disk in their own words, not always as an OSError with ENOSPC).
_NEARLY_FULL = 1 << 20


def _free_bytes(folder: Path) -> int | None:
    import shutil

    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


class _WriteErrors(contextlib.AbstractContextManager):
    def __init__(self, path: Path):
        self.path = path

    def __exit__(self, exc_type, exc, tb):
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, BrainresError):
            return False
        if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC,
                                                      errno.EDQUOT):
            raise WriteError(os_error_path(exc, self.path), f"cannot write: {os_problem(exc)}") from None
        free = _free_bytes(self.path if self.path.is_dir() else self.path.parent)
        if free is not None and free < _NEARLY_FULL:
            raise WriteError(self.path, f"cannot write: no space left on device (the disk is full: {free:,} bytes "
                                        f"free; the writer said {type(exc).__name__}: {str(exc)[:200]})") from None
        return False


def current_umask() -> int:
    """This process's umask, read without changing it (Linux), else by the set-and-restore idiom."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path, mode: int = 0o666) -> None:
    """Give ``path`` the permissions a new file of the user gets (``mode`` less the umask).

    ``tempfile.mkstemp`` creates files readable only by their owner (0600);
    atomic writes call this before the rename, so a report is as readable as
    any other file the user writes.
    """
    os.chmod(path, mode & ~current_umask())


def temporary_file(folder: Path, target_name: str, suffix: str = ".tmp") -> Path:
    """Create an empty temporary file for ``target_name`` in ``folder`` (recognisable as brainres's)."""
    with _writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target_name}.", suffix=f"{TEMP_TAG}{suffix}")
    os.close(handle)
    return Path(tmp)


def is_temporary(name: str) -> bool:
    """Whether a file name is that of an atomic write's temporary file (this version's or an earlier one's)."""
    return name.startswith(".") and (TEMP_TAG in name or bool(_LEGACY_TEMP.match(name)))


def remove_temporaries(folder) -> list[Path]:
    """Remove the temporary files of interrupted atomic writes under ``folder``; return what was removed.

    Only call this while no other process writes into ``folder`` (a pipeline
    run does it while it holds the run folder's lock). Symbolic links are not
    followed.
    """
    removed = []
    for root, _, names in os.walk(folder, followlinks=False):
        for name in names:
            path = Path(root) / name
            if is_temporary(name) and not path.is_symlink():
                try:
                    path.unlink()
                    removed.append(path)
                except FileNotFoundError:
                    pass
    return removed


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    The written file gets the permissions the umask allows. A folder that cannot
    be written, or a full disk, raises :class:`WriteError` naming the path.
    """
    path = Path(path)
    tmp = temporary_file(path.parent, path.name, suffix or ".tmp")
    try:
        with _writing(path):
            yield tmp
            with open(tmp, "rb") as written:
                os.fsync(written.fileno())
            apply_umask(tmp)
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


def engine_for(path) -> str:
    """The xarray engine that reads ``path``: h5netcdf (netCDF4/HDF5), or netcdf4 for netCDF3 classic files."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError:
        return ENGINE
    if magic in _NETCDF3_MAGIC:
        try:
            import netCDF4  # noqa: F401
        except ImportError:
            return "scipy"  # reads netCDF3 too
        return "netcdf4"
    return ENGINE


def _open(path: Path, **kwargs) -> xr.Dataset:
    if not path.exists():
        raise DataFileError(path, "no such file")
    if path.is_dir():
        raise DataFileError(path, "is a folder, not a netCDF file")
    try:
        return xr.open_dataset(path, engine=engine_for(path), **kwargs)
    except PermissionError as err:
        raise DataFileError(path, f"cannot be read: {os_problem(err)}") from None
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as err:
        raise DataFileError(path, f"not a readable netCDF file ({type(err).__name__}: {err})") from None


def read_netcdf(path, validate_kind: str | None = None) -> xr.Dataset:
    """Read a dataset written by :func:`write_netcdf` (or any netCDF4 or netCDF3 file) fully into memory."""
    path = Path(path)
    try:
        with _open(path) as opened:
            ds = opened.load()
    except (OSError, ValueError, RuntimeError) as err:
        raise DataFileError(path, f"not a readable netCDF file ({type(err).__name__}: {err})") from None
    ds = decode_from_netcdf(ds)
    kind = validate_kind or ds.attrs.get("brainres_kind")
    if kind:
        from brainres.data.schema import validate

        validate(ds, kind, source=str(path))
    return ds


def open_netcdf(path) -> xr.Dataset:
    """Open a dataset lazily (for exports too large for memory); attrs decoded."""
    return decode_from_netcdf(_open(Path(path)))


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
        paths, engine=engine_for(paths[0]), combine="nested", concat_dim=concat_dim, data_vars="minimal",
        coords="minimal",
        compat="override", combine_attrs="override", join="exact",
    )
    return decode_from_netcdf(combined)
