"""Data model, file input/output and the dataset registry."""

from brainres.data.io import atomic_path, open_netcdf, read_netcdf, write_netcdf
from brainres.data.rsatoolbox import from_rsatoolbox, to_rsatoolbox  # rsatoolbox itself is imported on use
from brainres.data.schema import KINDS, validate

__all__ = [
    "KINDS", "atomic_path", "from_rsatoolbox", "open_netcdf", "read_netcdf", "to_rsatoolbox", "validate",
    "write_netcdf",
]
