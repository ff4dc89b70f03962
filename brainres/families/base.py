"""What a model family declares, so that training, export, pipelines and reports need no family by name.

Image families (:class:`ImageFamily`) meet the image-model contract and share one trainer and
exporter; task families (:class:`TaskFamily`) bring their own task, train and measure themselves.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import pandas as pd


@dataclasses.dataclass(frozen=True)
class ImageFamily:
    """A family of image models meeting the contract (``brainres.models.contract``).

    The shared trainer and exporter do the rest; a family only says how its
    network is configured, built and described.

    Attributes
    ----------
    id : str
        The pipeline's ``family = "<id>"``.
    description : str
        One line for listings.
    settings_table : str or None
        Name of the ``[model.<table>]`` that holds its settings (the lattice's
        ``[model.lattice]``), or None when its settings are ``[[model]]`` keys.
    model_keys : tuple of str
        ``[[model]]`` keys that belong to this family (the torch family's
        ``factory`` and ``options``).
    settings : callable
        ``settings(values, in_channels=, n_classes=, folder=) -> (settings, location)``:
        checks the user's values (raising :class:`brainres.settings.SettingsError`)
        and returns the settings to record and hash, and where the code lives
        (recorded, not hashed).
    build : callable
        ``build(record, seed=, location=) -> nn.Module``: a fresh network from
        a model record (``family``, ``settings``, ``classes``, ``in_channels``,
        ``image_size``); called under ``torch.manual_seed(seed)``.
    describe : callable
        ``describe(record) -> str``: the methods phrase for the network, from
        the recorded settings only.
    pressures : callable
        ``pressures(record) -> dict``: the resource pressures it was trained
        under (recorded in every export; empty for families without any).
    code_files : callable
        ``code_files(settings, location) -> list of Path``: user code whose
        contents are part of the task hashes (brainres's own sources are
        always hashed).
    example : dict
        Settings of a tiny network for the shared checks every family passes.
    """

    id: str
    description: str
    settings_table: str | None
    model_keys: tuple[str, ...]
    settings: Callable
    build: Callable
    describe: Callable[[dict], str]
    pressures: Callable[[dict], dict] = lambda record: {}
    code_files: Callable[[dict, dict], list[Path]] = lambda settings, location: []
    example: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TaskRun:
    """One trained seed of a task family: its model, per-epoch log, and whatever else it measured."""

    config: object
    seed: int
    model: object
    log: "pd.DataFrame"
    run_dir: Path | None = None
    extras: dict = dataclasses.field(default_factory=dict)


def runs_to_measure(config, runs, error: type[Exception]) -> list:
    """The runs a family measures together: at least one, of distinct seeds, all trained with ``config``."""
    runs = list(runs)
    seeds = [run.seed for run in runs]
    if not runs or len(set(seeds)) != len(seeds):
        raise error(f"measure needs runs of distinct seeds, got seeds {seeds}")
    for run in runs:
        if run.config != config:
            raise error(f"the run of seed {run.seed} was trained with another configuration")
    return runs


@dataclasses.dataclass(frozen=True)
class Variant:
    """One configuration of a swept model: a label, what it changes, tags for the report, and its parent.

    ``continue_from`` names the variant whose trained model (same seed) this
    one starts from (e.g. training on after a switch of input distribution).
    """

    label: str
    overrides: dict = dataclasses.field(default_factory=dict)
    tags: dict = dataclasses.field(default_factory=dict)
    continue_from: str | None = None


@dataclasses.dataclass(frozen=True)
class TaskFamily:
    """A family that brings its own task (sequences, continual learning, codes) and measures itself.

    Attributes
    ----------
    id, description : str
    config : type
        Its settings (a :class:`brainres.settings.Settings` dataclass): the
        ``[model.<id>]`` table of a pipeline.
    train : callable
        ``train(config, seed, *, run_dir=None, parent=None, progress=False, label=None,
        stop_after_epoch=None) -> TaskRun``: seeded (the same seed gives the same
        weights), resumable from ``run_dir``'s checkpoint after every epoch
        (``stop_after_epoch`` interrupts on purpose); ``parent`` is the
        :class:`TaskRun` a variant continues from.
    load : callable
        ``load(config, run_dir) -> TaskRun``: a finished run, rebuilt from its folder.
    measure : callable
        ``measure(config, runs) -> xarray.Dataset``: a validated ``model_measures``
        dataset of the runs (one per seed) of one configuration.
    describe : callable
        ``describe(config) -> str``: methods text from the recorded settings.
    sweeps : dict
        ``name -> expand(config, options) -> list of Variant``: named ways to
        turn a ``[model.sweep]`` table into variants (a budget line, a list of widths).
    example : dict
        Settings of a tiny configuration that trains in a second or two: the
        shared checks every family passes (``tests/families/test_every_family.py``) use it.
    """

    id: str
    description: str
    config: type
    train: Callable
    load: Callable
    measure: Callable
    describe: Callable
    sweeps: dict = dataclasses.field(default_factory=dict)
    example: dict = dataclasses.field(default_factory=dict)
