"""Converting ``neural_rdms`` datasets to and from rsatoolbox ``RDMs`` objects.

rsatoolbox (https://github.com/rsagroup/rsatoolbox) is optional: it is
imported inside the functions, so this module imports without it and only a
call says what to install.

An ``RDMs`` object keeps each matrix as the vector of its upper triangle
(row by row, as ``scipy.spatial.distance.squareform``); per-matrix metadata
lives in ``rdm_descriptors`` and per-stimulus metadata in
``pattern_descriptors``. brainres keeps full symmetric matrices with the
metadata as coordinates along ``rdm`` and ``stimulus_id``; the converters map
one onto the other, so a round trip returns the original dataset.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from brainres.data.schema import PROVENANCE_ATTRS, validate
from brainres.errors import BrainresError, SchemaError

RDM_COORDS = ("subject", "session", "region", "measure")


def _rsatoolbox():
    try:
        import rsatoolbox.rdm
    except ImportError:
        raise BrainresError("converting RDMs to and from rsatoolbox needs the rsatoolbox package: "
                            "pip install rsatoolbox") from None
    return rsatoolbox


def _strings(values) -> list[str]:
    return [str(v) for v in np.asarray(values).ravel()]


def _extra_coords(ds: xr.Dataset, dim: str, skip) -> dict[str, list]:
    """1-d coordinates along ``dim`` other than ``skip`` (e.g. ``species``, ``category``)."""
    return {name: np.asarray(coord.values).tolist() for name, coord in ds.coords.items()
            if coord.dims == (dim,) and name not in skip}


def to_rsatoolbox(ds: xr.Dataset):
    """Convert a ``neural_rdms`` dataset into an ``rsatoolbox.rdm.RDMs`` object.

    Parameters
    ----------
    ds : xarray.Dataset
        Kind ``neural_rdms`` (validated first).

    Returns
    -------
    rsatoolbox.rdm.RDMs
        One dissimilarity vector (the upper triangle) per ``rdm``; NaN entries
        are kept. ``dissimilarity_measure`` is the shared ``measure``, or
        ``"mixed"`` when the matrices differ. ``rdm_descriptors`` hold ``rdm``,
        ``subject``, ``session``, ``region``, ``measure`` and any other
        coordinate along ``rdm``; ``pattern_descriptors`` hold ``stimulus_id``
        and any other coordinate along ``stimulus_id`` (e.g. ``category``);
        ``descriptors`` hold the provenance attributes.

    Raises
    ------
    SchemaError
        When ``ds`` is not a valid ``neural_rdms`` dataset.
    BrainresError
        When rsatoolbox is not installed.

    Examples
    --------
    >>> import brainres
    >>> rdms = to_rsatoolbox(brainres.load_dataset("kriegeskorte2008-92"))  # doctest: +SKIP
    >>> rdms.subset("rdm", "hIT").get_matrices().shape  # doctest: +SKIP
    (1, 92, 92)
    """
    rsatoolbox = _rsatoolbox()
    validate(ds, "neural_rdms")
    dissimilarity = ds["dissimilarity"].transpose("rdm", "stimulus_id", "stimulus_id_2")
    rows, cols = np.triu_indices(ds.sizes["stimulus_id"], k=1)
    vectors = np.asarray(dissimilarity.values, dtype=float)[:, rows, cols]
    measures = set(_strings(ds["measure"].values))
    rdm_descriptors = {"rdm": _strings(ds["rdm"].values)}
    rdm_descriptors.update({name: _strings(ds[name].values) for name in RDM_COORDS})
    rdm_descriptors.update(_extra_coords(ds, "rdm", rdm_descriptors))
    pattern_descriptors = {"stimulus_id": _strings(ds["stimulus_id"].values)}
    pattern_descriptors.update(_extra_coords(ds, "stimulus_id", pattern_descriptors))
    return rsatoolbox.rdm.RDMs(
        vectors,
        dissimilarity_measure=measures.pop() if len(measures) == 1 else "mixed",
        descriptors={name: ds.attrs[name] for name in PROVENANCE_ATTRS if name in ds.attrs},
        rdm_descriptors=rdm_descriptors,
        pattern_descriptors=pattern_descriptors,
    )


def _pattern_ids(rdms, stimulus_ids, n: int, source: str) -> list[str]:
    if stimulus_ids is not None:
        ids = _strings(stimulus_ids)
    else:
        descriptors = dict(rdms.pattern_descriptors or {})
        key = next((k for k in ("stimulus_id", "index") if k in descriptors), next(iter(descriptors), None))
        # rsatoolbox always adds 'index'; an object without any descriptor is numbered here
        ids = _strings(descriptors[key]) if key is not None else [str(i) for i in range(n)]
    if len(ids) != n:
        raise SchemaError("neural_rdms", [f"{len(ids)} stimulus ids given for RDMs of {n} conditions"], source)
    return ids


def from_rsatoolbox(
    rdms,
    *,
    stimulus_ids=None,
    dataset_id: str = "rsatoolbox",
    source: str = "rsatoolbox RDMs",
    license: str = "unknown",
    citation: str = "unknown",
) -> xr.Dataset:
    """Convert an ``rsatoolbox.rdm.RDMs`` object into a ``neural_rdms`` dataset.

    Parameters
    ----------
    rdms : rsatoolbox.rdm.RDMs
        The matrices.
    stimulus_ids : sequence, optional
        One id per condition. Default: the pattern descriptor ``stimulus_id``,
        else ``index``, else the first pattern descriptor (as strings).
    dataset_id, source, license, citation : str
        Provenance attributes of the dataset.

    Returns
    -------
    xarray.Dataset
        Kind ``neural_rdms``: full symmetric matrices with zero diagonal (from
        ``rdms.get_matrices()``). Coordinates along ``rdm`` come from the rdm
        descriptors (``rdm`` for the names, default ``rdm0``, ``rdm1``...;
        ``subject``, ``session``, ``region`` default ``""``; ``measure``
        defaults to ``rdms.dissimilarity_measure`` or ``"unknown"``); other rdm
        and pattern descriptors (but rsatoolbox's ``index``) become coordinates
        along ``rdm`` and ``stimulus_id``.

    Raises
    ------
    SchemaError
        When the stimulus ids do not fit the matrices (wrong number, empty or
        repeated ids).
    BrainresError
        When rsatoolbox is not installed.

    Examples
    --------
    >>> from rsatoolbox.rdm import RDMs  # doctest: +SKIP
    >>> rdms = RDMs(np.array([[0.2, 0.9, 0.7]]), dissimilarity_measure="correlation")  # doctest: +SKIP
    >>> from_rsatoolbox(rdms, stimulus_ids=["a", "b", "c"])["dissimilarity"].shape  # doctest: +SKIP
    (1, 3, 3)
    """
    rsatoolbox = _rsatoolbox()
    if not isinstance(rdms, rsatoolbox.rdm.RDMs):
        raise SchemaError("neural_rdms", [f"expected an rsatoolbox.rdm.RDMs object, got {type(rdms).__name__}"],
                          source)
    matrices = np.asarray(rdms.get_matrices(), dtype=float)
    n_rdm, n = matrices.shape[:2]
    ids = _pattern_ids(rdms, stimulus_ids, n, source)
    described = dict(rdms.rdm_descriptors or {})
    names = _strings(described["rdm"]) if "rdm" in described else [f"rdm{i}" for i in range(n_rdm)]
    coords = {"rdm": names, "stimulus_id": ids, "stimulus_id_2": ids}
    defaults = {"subject": "", "session": "", "region": "", "measure": rdms.dissimilarity_measure or "unknown"}
    for name, default in defaults.items():
        coords[name] = ("rdm", _strings(described[name]) if name in described else [default] * n_rdm)
    for name, values in described.items():
        if name not in coords and name != "index":
            coords[name] = ("rdm", _plain(values))
    for name, values in (rdms.pattern_descriptors or {}).items():
        if name not in coords and name != "index":
            coords[name] = ("stimulus_id", _plain(values))
    ds = xr.Dataset({"dissimilarity": (("rdm", "stimulus_id", "stimulus_id_2"), matrices)}, coords=coords)
    ds.attrs.update(dataset_id=dataset_id, source=source, license=license, citation=citation,
                    brainres_kind="neural_rdms")
    return validate(ds, "neural_rdms", source=source)


def _plain(values) -> np.ndarray:
    """A descriptor as a numpy array; mixed-type (object) values become strings, which netCDF can store."""
    array = np.asarray(values)
    return array.astype(str) if array.dtype.kind == "O" else array
