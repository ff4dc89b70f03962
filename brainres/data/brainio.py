"""Interoperability with Brain-Score / BrainIO neural assemblies.

A BrainIO assembly is an ``xr.DataArray`` with dims ``presentation`` x
``neuroid`` (x ``time_bin``); ``presentation`` carries ``stimulus_id`` (one
presentation per repetition of a stimulus) and ``neuroid`` carries
``neuroid_id`` plus metadata such as ``region``. brainres keeps responses per
stimulus with an explicit ``repetition`` dimension instead, so converting is
a reshape, not an average: nothing is thrown away.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from brainres.data.io import atomic_path
from brainres.data.schema import validate
from brainres.errors import DataFileError, SchemaError


def _flat(assembly: xr.DataArray) -> xr.DataArray:
    """Drop multi-indexes so every level is an ordinary coordinate."""
    for dim in assembly.dims:
        if dim in assembly.indexes and isinstance(assembly.indexes[dim], pd.MultiIndex):
            assembly = assembly.reset_index(dim)
    return assembly


def from_brainio(assembly: xr.DataArray, *, dataset_id: str | None = None, source: str = "BrainIO assembly",
                 license: str = "unknown", citation: str = "unknown") -> xr.Dataset:
    """Convert a BrainIO-style assembly into a ``neural_responses`` dataset.

    Stimuli keep the order of their first presentation. Presentations of the
    same stimulus become ``repetition`` 0, 1, ... (or use the assembly's
    ``repetition`` coordinate); stimuli with fewer repetitions than others are
    padded with NaN and ``n_repetitions`` records the true count.
    """
    problems = []
    if not isinstance(assembly, xr.DataArray):
        raise SchemaError("brainio assembly", [f"expected an xarray.DataArray, got {type(assembly).__name__}"])
    assembly = _flat(assembly)
    for dim in ("presentation", "neuroid"):
        if dim not in assembly.dims:
            problems.append(f"missing dimension {dim!r} (dims are {assembly.dims})")
    extra_dims = set(assembly.dims) - {"presentation", "neuroid", "time_bin"}
    if extra_dims:
        problems.append(f"unexpected dimension(s) {sorted(extra_dims)}")
    if "stimulus_id" not in assembly.coords or assembly["stimulus_id"].dims != ("presentation",):
        problems.append("missing coordinate 'stimulus_id' along 'presentation'")
    if "neuroid_id" not in assembly.coords or assembly["neuroid_id"].dims != ("neuroid",):
        problems.append("missing coordinate 'neuroid_id' along 'neuroid'")
    if problems:
        raise SchemaError("brainio assembly", problems, source)

    order = ["presentation", "neuroid"] + (["time_bin"] if "time_bin" in assembly.dims else [])
    assembly = assembly.transpose(*order)
    stimulus = assembly["stimulus_id"].values.astype(str)
    unique_ids, first = np.unique(stimulus, return_index=True)
    stimulus_ids = unique_ids[np.argsort(first)]
    position = {s: i for i, s in enumerate(stimulus_ids)}
    if "repetition" in assembly.coords:
        repetition = assembly["repetition"].values.astype(int)
    else:
        repetition = pd.Series(stimulus).groupby(stimulus, sort=False).cumcount().to_numpy()
    keys = pd.DataFrame({"s": stimulus, "r": repetition})
    if keys.duplicated().any():
        raise SchemaError("brainio assembly", ["two presentations share a stimulus_id and repetition"], source)
    n_reps = int(repetition.max()) + 1
    values = np.asarray(assembly.values, dtype=float)
    shape = (len(stimulus_ids), values.shape[1], *values.shape[2:], n_reps)
    response = np.full(shape, np.nan)
    rows = np.array([position[s] for s in stimulus])
    response[rows, ..., repetition] = values  # advanced indexes on axes 0 and -1
    dims = ["stimulus_id", "neuroid"] + (["time_bin"] if "time_bin" in assembly.dims else []) + ["repetition"]
    coords = {"stimulus_id": stimulus_ids, "neuroid": assembly["neuroid_id"].values.astype(str),
              "repetition": np.arange(n_reps)}
    dropped = []
    for name, coord in assembly.coords.items():
        if name in ("stimulus_id", "neuroid_id", "repetition", "presentation", "neuroid"):
            continue
        if coord.dims == ("neuroid",):
            coords[name] = ("neuroid", coord.values)
        elif coord.dims == ("time_bin",):
            coords[name] = ("time_bin", coord.values)
        elif coord.dims == ("presentation",):
            per_stimulus = pd.Series(coord.values).groupby(stimulus, sort=False)
            if (per_stimulus.nunique(dropna=False) <= 1).all():
                coords[name] = ("stimulus_id", per_stimulus.first().reindex(stimulus_ids).to_numpy())
            else:
                dropped.append(name)  # varies within a stimulus: cannot live on stimulus_id
    ds = xr.Dataset({"response": (dims, response)}, coords=coords)
    ds["n_repetitions"] = ("stimulus_id", np.bincount(rows, minlength=len(stimulus_ids)))
    if n_reps == 1:
        ds["response"] = ds["response"].squeeze("repetition", drop=True)
        ds = ds.drop_vars("repetition")
    ds.attrs.update(dataset_id=dataset_id or str(assembly.name or "brainio"), source=source, license=license,
                    citation=citation, brainres_kind="neural_responses")
    if dropped:
        ds.attrs["presentation_coords_not_kept"] = dropped
    return validate(ds, "neural_responses", source=source)


def to_brainio(ds: xr.Dataset) -> xr.DataArray:
    """Convert a ``neural_responses`` dataset into a BrainIO-style assembly.

    One presentation per (stimulus, repetition) with a response (padding NaNs
    of stimuli with fewer repetitions are left out); ``presentation`` and
    ``neuroid`` are multi-indexed like BrainIO's ``NeuroidAssembly``.
    """
    validate(ds, "neural_responses")
    response = ds["response"]
    if "repetition" not in response.dims:
        response = response.expand_dims(repetition=[0], axis=-1)
    time_dims = ["time_bin"] if "time_bin" in response.dims else []
    response = response.transpose("stimulus_id", "repetition", "neuroid", *time_dims)
    n_stim, n_rep = response.sizes["stimulus_id"], response.sizes["repetition"]
    counts = ds["n_repetitions"].values if "n_repetitions" in ds else np.full(n_stim, n_rep)
    keep = (np.arange(n_rep)[None, :] < counts[:, None]).ravel()
    values = response.values.reshape(n_stim * n_rep, *response.shape[2:])[keep]
    stimulus = np.repeat(ds["stimulus_id"].values.astype(str), n_rep)[keep]
    repetition = np.tile(np.arange(n_rep), n_stim)[keep]
    coords = {"stimulus_id": ("presentation", stimulus), "repetition": ("presentation", repetition),
              "neuroid_id": ("neuroid", ds["neuroid"].values.astype(str))}
    for name, coord in ds.coords.items():
        if name in ("stimulus_id", "neuroid", "repetition"):
            continue
        if coord.dims == ("stimulus_id",):
            coords[name] = ("presentation", np.repeat(coord.values, n_rep)[keep])
        elif coord.dims in (("neuroid",), ("time_bin",)):
            coords[name] = (coord.dims[0], coord.values)
    assembly = xr.DataArray(values, dims=["presentation", "neuroid", *time_dims], coords=coords,
                            name=ds.attrs.get("dataset_id", "responses"))
    presentation_levels = [n for n, c in assembly.coords.items() if c.dims == ("presentation",)]
    neuroid_levels = [n for n, c in assembly.coords.items() if c.dims == ("neuroid",)]
    assembly = assembly.set_index(presentation=presentation_levels, neuroid=neuroid_levels)
    assembly.attrs = {k: v for k, v in ds.attrs.items() if isinstance(v, (str, int, float))}
    return assembly


def write_brainio(ds: xr.Dataset, path) -> Path:
    """Write ``ds`` as a BrainIO-style assembly netCDF (atomically)."""
    assembly = _flat(to_brainio(ds))
    with atomic_path(path, suffix=".nc") as tmp:
        assembly.to_netcdf(tmp, engine="h5netcdf")
    return Path(path)


def read_brainio(path, **provenance) -> xr.Dataset:
    """Read a BrainIO assembly netCDF (one data variable) into ``neural_responses``."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(path, "no such file")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as opened:
            loaded = opened.load()
    except (OSError, ValueError) as err:
        raise DataFileError(path, f"not a readable netCDF file ({err})") from None
    if len(loaded.data_vars) != 1:
        raise DataFileError(path, f"expected one data variable (the assembly), found {list(loaded.data_vars)}")
    assembly = loaded[next(iter(loaded.data_vars))]
    provenance.setdefault("source", str(path))
    return from_brainio(assembly, **provenance)
