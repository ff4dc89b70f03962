"""The dataset registry: find a dataset plug-in by id, fetch its files, load it.

Plug-ins live in ``brainres.datasets`` (the repository's ``datasets/``
folder). Each registers in one line of ``brainres/datasets/__init__.py`` as
``"dataset-id": "module:SPEC"``; the module is imported only when that dataset
is used. Third-party packages can add datasets through the entry-point group
``brainres.datasets`` (name = dataset id, value = ``"package.module:SPEC"``),
the environment variable ``BRAINRES_DATASET_PLUGINS``
(``"package.module:SPEC,..."``, seen by cluster workers too) or at run time
with :func:`register`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import xarray as xr

from brainres.data.fetch import RemoteFile, fetch
from brainres.data.schema import validate
from brainres.errors import BrainresError, UnknownDatasetError

PLUGIN_PACKAGE = "brainres.datasets"
ENTRY_POINT_GROUP = "brainres.datasets"
# Extra specs named in the environment ("pkg.module:SPEC,other.module:SPEC") are seen by
# every process of a run, including cluster workers, unlike run-time registrations.
PLUGINS_ENV = "BRAINRES_DATASET_PLUGINS"


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset plug-in declares.

    Parameters
    ----------
    id : str
        Registry id, e.g. ``"geirhos2021-edge"``.
    kind : str
        Data-model kind of :func:`load_dataset`'s result (see ``brainres.data.schema``).
    description : str
        One line for ``brainres datasets list``.
    folder : str
        Dataset folder, the same in the mirror (``$BRAINRES_DATA/<folder>``) and the cache.
    source, license, citation : str
        Provenance, copied into every loaded dataset's attributes.
    data_files, stimulus_files : callable returning list of RemoteFile
        Files needed by the loaders (called lazily: lists can be long).
    load : callable(paths) -> xr.Dataset
        Builds the dataset from ``{relative path: local path}``.
    load_stimuli : callable(paths) -> xr.Dataset, optional
        Builds the stimuli dataset (kind ``stimuli``).
    stimuli_of : str, optional
        Id of another dataset whose stimuli these data refer to (e.g. cifar10h -> cifar10-test).
    """

    id: str
    kind: str
    description: str
    folder: str
    source: str
    license: str
    citation: str
    load: Callable[[dict[str, Path]], xr.Dataset]
    data_files: Callable[[], list[RemoteFile]] = list
    stimulus_files: Callable[[], list[RemoteFile]] = list
    load_stimuli: Callable[[dict[str, Path]], xr.Dataset] | None = None
    stimuli_of: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


_RUNTIME: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> None:
    """Register a dataset at run time (for a user's own plug-in)."""
    if spec.id in _index():
        raise BrainresError(f"dataset id {spec.id!r} is already registered")
    _RUNTIME[spec.id] = spec


def _index() -> dict[str, str | DatasetSpec]:
    plugins = importlib.import_module(PLUGIN_PACKAGE)
    index: dict[str, str | DatasetSpec] = {
        key: f"{PLUGIN_PACKAGE}.{target}" for key, target in plugins.INDEX.items()
    }
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        index.setdefault(entry.name, entry.value)
    for target in filter(None, os.environ.get(PLUGINS_ENV, "").split(",")):
        module_name, _, attribute = target.strip().partition(":")
        spec = getattr(importlib.import_module(module_name), attribute)
        index.setdefault(spec.id, spec)
    index.update(_RUNTIME)
    return index


def dataset_ids() -> list[str]:
    """Ids of every registered dataset, sorted."""
    return sorted(_index())


def get_spec(dataset_id: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``dataset_id`` (imports only its plug-in)."""
    index = _index()
    if dataset_id not in index:
        raise UnknownDatasetError(
            f"unknown dataset {dataset_id!r}; registered: {', '.join(sorted(index))}"
        )
    target = index[dataset_id]
    if isinstance(target, DatasetSpec):
        return target
    module_name, _, attribute = target.partition(":")
    spec = getattr(importlib.import_module(module_name), attribute)
    if spec.id != dataset_id:
        raise BrainresError(f"registry line for {dataset_id!r} points at the spec of {spec.id!r}")
    return spec


def _provenance(ds: xr.Dataset, spec: DatasetSpec, kind: str) -> xr.Dataset:
    ds.attrs.update(
        dataset_id=spec.id, source=spec.source, license=spec.license,
        citation=spec.citation, brainres_kind=kind,
    )
    return ds


def fetch_dataset(dataset_id: str, progress: bool = False) -> dict[str, Path]:
    """Make every file of a dataset available locally (verified); return their paths."""
    spec = get_spec(dataset_id)
    files = list(spec.data_files()) + list(spec.stimulus_files())
    return fetch(spec.folder, files, progress=progress)


def load_dataset(dataset_id: str, progress: bool = False) -> xr.Dataset:
    """Load a registered dataset as a validated :class:`xarray.Dataset`.

    Parameters
    ----------
    dataset_id : str
        A registered id (``brainres datasets list``).
    progress : bool
        Show download progress.

    Returns
    -------
    xarray.Dataset
        Of the kind named in the dataset's spec, with provenance attributes
        ``dataset_id``, ``source``, ``license``, ``citation``.
    """
    spec = get_spec(dataset_id)
    paths = fetch(spec.folder, list(spec.data_files()), progress=progress)
    ds = _provenance(spec.load(paths), spec, spec.kind)
    return validate(ds, spec.kind, source=dataset_id)


def load_stimuli(dataset_id: str, progress: bool = False) -> xr.Dataset:
    """Load the stimuli (images and labels) of a registered dataset.

    For datasets whose stimuli belong to another dataset (``stimuli_of``),
    that dataset's stimuli are returned.
    """
    spec = get_spec(dataset_id)
    if spec.stimuli_of:
        return load_stimuli(spec.stimuli_of, progress=progress)
    if spec.load_stimuli is None:
        raise BrainresError(f"dataset {dataset_id!r} has no stimuli")
    paths = fetch(spec.folder, list(spec.stimulus_files()), progress=progress)
    ds = _provenance(spec.load_stimuli(paths), spec, "stimuli")
    return validate(ds, "stimuli", source=dataset_id)
