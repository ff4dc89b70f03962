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


class PluginError(BrainresError):
    """A dataset plug-in named in the environment, an entry point or the index cannot be loaded."""


def register(spec: DatasetSpec) -> None:
    """Register a dataset at run time (for a user's own plug-in)."""
    if spec.id in _index(strict=False):
        raise BrainresError(f"dataset id {spec.id!r} is already registered")
    _RUNTIME[spec.id] = spec


def _load_target(target: str):
    """The object a ``"package.module:ATTRIBUTE"`` target names; a :class:`PluginError` saying why not."""
    module_name, sep, attribute = target.strip().partition(":")
    if not sep or not module_name or not attribute:
        raise PluginError(f"{target!r} is not of the form 'package.module:SPEC'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise PluginError(f"{target!r}: module {module_name!r} cannot be imported ({type(err).__name__}: {err})") \
            from None
    except Exception as err:  # the plug-in's own code failed while importing
        raise PluginError(f"{target!r}: importing module {module_name!r} failed ({type(err).__name__}: {err})") \
            from None
    if not hasattr(module, attribute):
        raise PluginError(f"{target!r}: module {module_name!r} has no attribute {attribute!r}")
    return getattr(module, attribute)


def _environment_plugins() -> tuple[list[DatasetSpec], list[str]]:
    """The specs named in ``BRAINRES_DATASET_PLUGINS``, and a description of each entry that cannot be loaded."""
    value = os.environ.get(PLUGINS_ENV, "")
    specs, problems = [], []
    for target in filter(None, (t.strip() for t in value.split(","))):
        try:
            spec = _load_target(target)
        except PluginError as err:
            problems.append(str(err))
            continue
        if not isinstance(spec, DatasetSpec):
            problems.append(f"{target!r} is a {type(spec).__name__}, not a brainres.data.registry.DatasetSpec")
            continue
        specs.append(spec)
    return specs, problems


def plugin_problems() -> list[str]:
    """What is wrong with ``BRAINRES_DATASET_PLUGINS`` (empty when every entry loads), each naming the entry."""
    return [f"{PLUGINS_ENV}={os.environ.get(PLUGINS_ENV, '')!r}: {p}" for p in _environment_plugins()[1]]


def _index(strict: bool = True) -> dict[str, str | DatasetSpec]:
    """Every registered dataset: id -> "module:SPEC" target or spec.

    With ``strict``, an entry of ``BRAINRES_DATASET_PLUGINS`` that cannot be
    loaded is a :class:`PluginError` naming the variable and its value;
    otherwise it is left out (see :func:`plugin_problems`).
    """
    plugins = importlib.import_module(PLUGIN_PACKAGE)
    index: dict[str, str | DatasetSpec] = {
        key: f"{PLUGIN_PACKAGE}.{target}" for key, target in plugins.INDEX.items()
    }
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        index.setdefault(entry.name, entry.value)
    specs, problems = _environment_plugins()
    if problems and strict:
        raise PluginError(f"the environment variable {PLUGINS_ENV}={os.environ.get(PLUGINS_ENV, '')!r} names a "
                          f"dataset plug-in that cannot be loaded: {'; '.join(problems)}. Each entry must be "
                          "'package.module:SPEC' (comma-separated), SPEC a brainres.data.registry.DatasetSpec; "
                          f"fix or unset {PLUGINS_ENV}")
    for spec in specs:
        index.setdefault(spec.id, spec)
    index.update(_RUNTIME)
    return index


def dataset_ids(strict: bool = True) -> list[str]:
    """Ids of every registered dataset, sorted (``strict=False``: leave out plug-ins that cannot be loaded)."""
    return sorted(_index(strict=strict))


def get_spec(dataset_id: str, strict: bool = True) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``dataset_id`` (imports only its plug-in)."""
    index = _index(strict=strict)
    if dataset_id not in index:
        import difflib

        close = difflib.get_close_matches(dataset_id, sorted(index), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownDatasetError(
            f"unknown dataset {dataset_id!r}{hint}; registered: {', '.join(sorted(index))}"
        )
    target = index[dataset_id]
    if isinstance(target, DatasetSpec):
        return target
    try:
        spec = _load_target(target)
    except PluginError as err:
        raise PluginError(f"the plug-in of dataset {dataset_id!r} cannot be loaded: {err}") from None
    if not isinstance(spec, DatasetSpec):
        raise PluginError(f"the plug-in of dataset {dataset_id!r} ({target!r}) is a {type(spec).__name__}, "
                          "not a brainres.data.registry.DatasetSpec")
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
