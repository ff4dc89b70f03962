"""The breadth-depth-time lattice as an image family: ``family = "lattice"`` with ``[model.lattice]``.

``config.py`` holds its settings (:class:`LatticeConfig`), ``network.py`` the
network (:class:`LatticeNet`, which meets the image-model contract). Training,
export and readouts are the shared ones (``brainres.train``,
``brainres.export``). See ``docs/lattice.md``.
"""

from __future__ import annotations

from brainres.families.base import ImageFamily
from brainres.families.lattice.config import LatticeConfig, describe as _describe_config
from brainres.families.lattice.network import (
    FixedStepRecurrentNet, LatticeNet, geometric_prior, halting_distribution,
)

__all__ = ["FAMILY", "FixedStepRecurrentNet", "LatticeConfig", "LatticeNet", "geometric_prior",
           "halting_distribution"]


def _settings(values: dict, *, in_channels: int, n_classes: int, folder=None):
    values = dict(values)
    # in_channels and n_classes follow from the model's inputs and classes; a table may repeat them if they agree
    for name, expected in (("in_channels", in_channels), ("n_classes", n_classes)):
        if name in values and values[name] != expected:
            from brainres.settings import SettingsError

            raise SettingsError([f"{name}: {values.pop(name)!r} disagrees with the model's {name} ({expected}); "
                                 f"set it once, at the [[model]] level"])
        values[name] = expected
    return LatticeConfig.from_dict(values).to_dict(), {}


def _build(record: dict, *, seed: int, location: dict) -> LatticeNet:
    return LatticeNet(LatticeConfig.from_dict(record["settings"]), seed=seed)


def _describe(record: dict) -> str:
    return _describe_config(LatticeConfig.from_dict(record["settings"]))


FAMILY = ImageFamily(
    id="lattice",
    description="breadth-depth-time lattice: recurrent conv net with channel, layer and halting costs",
    settings_table="lattice",
    model_keys=(),
    settings=_settings,
    build=_build,
    describe=_describe,
    pressures=lambda record: LatticeConfig.from_dict(record["settings"]).pressures,
    example={"max_channels": 4, "max_layers": 2, "max_steps": 3, "lambda_time": 0.01},
)
