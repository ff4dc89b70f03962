"""The variants of one swept model (a budget line, a list of widths) as one ``model_measures`` dataset.

A task family's pipeline model is measured once per variant; comparisons of
the sweep see one dataset with a ``variant`` dimension. Variables whose other
dimensions agree across variants (per seed, per stimulus, per step) are kept;
those sized by the variant itself (per neuron, per unit) cannot share a
dimension and are left out, and ``attrs["dropped_variables"]`` says which.
Each variant's tags (its role, its knobs) and its scalar resource pressures
become coordinates along ``variant``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from brainres.data.schema import validate
from brainres.errors import BrainresError
from brainres.hashing import canonical_hash


class VariantError(BrainresError, ValueError):
    """Variant exports that cannot be combined."""


def _scalar(value) -> bool:
    return isinstance(value, (int, float, str, np.integer, np.floating)) and not isinstance(value, bool)


def combine_variants(exports: dict[str, xr.Dataset]) -> xr.Dataset:
    """One dataset over ``variant`` from ``{label: model_measures}`` (in the sweep's order).

    Each export's ``attrs["variant_tags"]`` (a dict) and the scalar entries of
    its ``attrs["pressures"]`` become coordinates along ``variant``.
    """
    if not exports:
        raise VariantError("no variant exports to combine")
    labels = list(exports)
    datasets = list(exports.values())
    shared_dims = {}
    for ds in datasets:
        for dim, size in ds.sizes.items():
            shared_dims.setdefault(dim, set()).add(size)
    ragged = {dim for dim, sizes in shared_dims.items() if len(sizes) > 1 and dim != "seed"}
    for dim in sorted(set(shared_dims) - ragged - {"seed"}):
        first = datasets[0][dim].values if dim in datasets[0].coords else None
        if first is not None and any(dim not in ds.coords or not np.array_equal(ds[dim].values, first)
                                     for ds in datasets[1:]):
            ragged.add(dim)
    dropped = sorted({name for ds in datasets for name, var in ds.data_vars.items() if set(var.dims) & ragged})
    trimmed = [ds.drop_vars([v for v in dropped if v in ds]).drop_dims([d for d in ragged if d in ds.dims])
               for ds in datasets]
    combined = xr.concat(trimmed, dim="variant", join="outer", combine_attrs="drop_conflicts",
                         coords="minimal", compat="override")
    combined = combined.assign_coords(variant=np.array(labels, dtype=str))
    tag_names = sorted({key for ds in datasets for key, value in {**ds.attrs.get("variant_tags", {}),
                                                                  **ds.attrs.get("pressures", {})}.items()
                        if _scalar(value)})
    for name in tag_names:
        values = [{**ds.attrs.get("pressures", {}), **ds.attrs.get("variant_tags", {})}.get(name) for ds in datasets]
        if all(isinstance(v, str) for v in values if v is not None):
            combined = combined.assign_coords({name: ("variant", np.array(["" if v is None else v for v in values]))})
        else:
            combined = combined.assign_coords({name: ("variant", np.array([np.nan if v is None else v for v in values],
                                                                          dtype=float))})
    # attributes every variant shares stay (concat drops conflicting ones); per-variant ones move to coordinates
    for key in ("config", "config_hash", "pressures", "variant", "variant_tags"):
        combined.attrs.pop(key, None)
    combined.attrs.update(pressures={}, config_hash=canonical_hash([ds.attrs.get("config_hash", "") for ds in datasets]),
                          variant_configs={label: ds.attrs.get("config", {}) for label, ds in exports.items()},
                          dropped_variables=dropped)
    return validate(combined, "model_measures")
