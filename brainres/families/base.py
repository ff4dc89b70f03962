"""What a model family declares, so that training, export, pipelines and reports need no family by name."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable


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
