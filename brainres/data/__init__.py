"""Data model, file input/output and the dataset registry."""

from brainres.data.io import atomic_path, open_netcdf, read_netcdf, write_netcdf
from brainres.data.schema import KINDS, validate

__all__ = ["KINDS", "atomic_path", "open_netcdf", "read_netcdf", "validate", "write_netcdf"]
