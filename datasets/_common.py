"""Helpers shared by the dataset plug-ins (not a plug-in itself)."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files as package_files

import numpy as np
import xarray as xr

from brainres.data.fetch import RemoteFile, registry_files


@lru_cache(maxsize=None)
def registered_files(registry_name: str, base_urls: tuple[tuple[str, str | None], ...]) -> tuple[RemoteFile, ...]:
    """Files listed in ``registry/<registry_name>``; URL = base of the longest matching prefix."""

    def url_for(path: str) -> str | None:
        for prefix, base in sorted(base_urls, key=lambda pair: -len(pair[0])):
            if path.startswith(prefix):
                return None if base is None else base + path[len(prefix):]
        return None

    registry = package_files("brainres.datasets").joinpath("registry", registry_name)
    return tuple(registry_files(registry, url_for))


def natural_key(text: str):
    """Sort 'oven2' before 'oven10'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def stimuli_dataset(ids, images: np.ndarray, category, **per_stimulus) -> xr.Dataset:
    """A stimuli dataset from ids, a (n, y, x, channel) uint8 array and per-stimulus labels."""
    data = {
        "image": (("stimulus_id", "y", "x", "channel"), images),
        "category": ("stimulus_id", np.asarray(category, dtype=str)),
    }
    for name, values in per_stimulus.items():
        data[name] = ("stimulus_id", np.asarray(values))
    return xr.Dataset(data, coords={"stimulus_id": np.asarray(ids, dtype=str)})
