"""Model families, one folder each, registered in one line each.

``"family-id": "folder:FAMILY"``; a family's folder is imported only when it is
used. Image families (the lattice, any user's ``nn.Module``) declare a
:class:`brainres.families.base.ImageFamily` and share one trainer and exporter;
task families (ELM, grow/prune plasticity, sequential/parallel autoencoders)
declare a :class:`brainres.families.base.TaskFamily` and train and measure
themselves. Training, export, pipelines and reports reach every family only
through its declaration.
"""

from __future__ import annotations

import importlib

from brainres.errors import BrainresError

INDEX = {
    "lattice": "lattice:FAMILY",
    "torch": "torch_module:FAMILY",
    "elm": "elm:FAMILY",
    "plasticity": "plasticity:FAMILY",
    "seqpar": "seqpar:FAMILY",
}


class UnknownFamilyError(BrainresError, KeyError):
    """A family id that is not registered."""

    def __str__(self):
        return str(self.args[0])


def family_ids() -> list[str]:
    """Ids of every registered family."""
    return sorted(INDEX)


def get_family(family_id: str):
    """The declaration of ``family_id`` (imports only that family's folder)."""
    if family_id not in INDEX:
        raise UnknownFamilyError(f"unknown model family {family_id!r}; registered: {', '.join(family_ids())}")
    module, _, attribute = INDEX[family_id].partition(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
