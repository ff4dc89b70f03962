"""brainres: compare resource-constrained neural networks with human behaviour and brains."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("brainres")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

from brainres.data import read_netcdf, validate, write_netcdf  # noqa: E402
from brainres.data.folders import read_stimuli  # noqa: E402
from brainres.data.measures import read_measures  # noqa: E402
from brainres.data.registry import dataset_ids, load_dataset, load_stimuli  # noqa: E402
from brainres.data.trials import read_trials  # noqa: E402


def open_run(run_dir):
    """A finished run folder, for reading and for display in a notebook (:class:`brainres.pipeline.view.Run`)."""
    from brainres.pipeline.view import open_run as _open_run

    return _open_run(run_dir)


__all__ = [
    "__version__", "dataset_ids", "load_dataset", "load_stimuli", "open_run", "read_measures", "read_netcdf",
    "read_stimuli", "read_trials", "validate", "write_netcdf",
]
