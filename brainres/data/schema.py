"""The brainres data model and its validator.

``docs/data-model.md`` is the specification; this module is its executable
form. :func:`validate` checks a dataset against one kind and raises a
:class:`~brainres.errors.SchemaError` that lists *every* violation found, not
just the first.

Kinds
-----
``human_trials``      one row per trial of a behavioural experiment
``human_labels``      per-stimulus human label counts (e.g. CIFAR-10H)
``stimuli``           the images, with labels
``neural_responses``  stimulus x neuroid [x time_bin] [x repetition] responses
``neural_rdms``       rdm x stimulus_id x stimulus_id_2 dissimilarity matrices
``model_measures``    what a model did per seed x stimulus [x occlusion] x step
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from brainres.errors import SchemaError

KINDS = (
    "human_trials",
    "human_labels",
    "stimuli",
    "neural_responses",
    "neural_rdms",
    "model_measures",
)

PROVENANCE_ATTRS = ("dataset_id", "source", "license", "citation")
MODEL_ATTRS = ("model_family", "pressures", "config_hash", "brainres_version", "training_data")

# Per-stimulus model measures that have a fixed meaning wherever they appear.
# name -> (dims that must be present, check)
MODEL_VARIABLES = {
    "halting_probability": ("step",),
    "expected_halting_step": (),
    "median_halting_step": (),
    "entropy_threshold_step": (),
    "uncertainty_auc": (),
    "entropy": ("step",),
    "predicted_class": ("step",),
    "correct": ("step",),
}


def validate(ds: xr.Dataset, kind: str | None = None, source: str | None = None) -> xr.Dataset:
    """Check ``ds`` against the data model of ``kind``; return it unchanged.

    Parameters
    ----------
    ds : xarray.Dataset
        The dataset to check.
    kind : str, optional
        One of :data:`KINDS`. Defaults to ``ds.attrs["brainres_kind"]``.
    source : str, optional
        Where the dataset came from (a file path), named in the error.

    Raises
    ------
    SchemaError
        Listing every violation found.
    """
    if not isinstance(ds, xr.Dataset):
        raise SchemaError(str(kind), [f"expected an xarray.Dataset, got {type(ds).__name__}"], source)
    kind = kind or ds.attrs.get("brainres_kind")
    if kind not in KINDS:
        raise SchemaError(str(kind), [f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}"], source)
    problems: list[str] = []
    declared = ds.attrs.get("brainres_kind")
    if declared is not None and declared != kind:
        problems.append(f"attribute brainres_kind is {declared!r}, expected {kind!r}")
    _CHECKS[kind](ds, problems)
    if problems:
        raise SchemaError(kind, problems, source)
    return ds


# --- small reusable checks; each appends readable messages to `problems` ---


def _need_dims(ds, dims, problems):
    for dim in dims:
        if dim not in ds.dims:
            problems.append(f"missing dimension {dim!r}")


def _need_vars(ds, names, problems, dims=None):
    ok = True
    for name in names:
        if name not in ds.data_vars and name not in ds.coords:
            problems.append(f"missing variable {name!r}")
            ok = False
        elif dims is not None and ds[name].dims != tuple(dims):
            problems.append(f"variable {name!r} has dims {ds[name].dims}, expected {tuple(dims)}")
            ok = False
    return ok


def _need_attrs(ds, names, problems):
    for name in names:
        value = ds.attrs.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.append(f"missing attribute {name!r}")


def _is_string(arr) -> bool:
    kind = np.asarray(arr).dtype.kind
    if kind in "UT":
        return True
    if kind == "O":
        return all(isinstance(v, str) for v in np.asarray(arr).ravel())
    return False


def _check_ids(ds, dim, problems):
    """A dimension used as an identifier: strings, unique, none empty."""
    if dim not in ds.coords:
        problems.append(f"dimension {dim!r} has no coordinate of identifiers")
        return
    values = np.asarray(ds[dim].values)
    if not _is_string(values):
        problems.append(f"coordinate {dim!r} must hold strings, has dtype {values.dtype}")
        return
    empty = int(np.sum(values.astype(str) == ""))
    if empty:
        problems.append(f"coordinate {dim!r} has {empty} empty identifiers")
    uniq, counts = np.unique(values.astype(str), return_counts=True)
    dup = uniq[counts > 1]
    if dup.size:
        problems.append(f"coordinate {dim!r} has duplicate values: {', '.join(dup[:10])}")


def _check_string_coord(ds, name, dim, problems):
    if name not in ds.coords:
        problems.append(f"missing coordinate {name!r}")
    elif ds[name].dims != (dim,):
        problems.append(f"coordinate {name!r} must lie along {dim!r}, has dims {ds[name].dims}")
    elif not _is_string(ds[name].values):
        problems.append(f"coordinate {name!r} must hold strings, has dtype {ds[name].dtype}")


def _check_bool_like(ds, name, problems):
    values = np.asarray(ds[name].values)
    if values.dtype.kind == "b":
        return
    if values.dtype.kind in "iu" and np.isin(values, [0, 1]).all():
        return
    problems.append(f"variable {name!r} must be boolean, has dtype {values.dtype}")


# --- the kinds ---


def _check_human_trials(ds, problems):
    _need_dims(ds, ["trial"], problems)
    _need_attrs(ds, PROVENANCE_ATTRS, problems)
    if "exclusions" not in ds.attrs:
        problems.append("missing attribute 'exclusions' (list of {rule, n_trials}; [] if none)")
    elif not isinstance(ds.attrs["exclusions"], list) or not all(
        isinstance(e, dict) and {"rule", "n_trials"} <= set(e) for e in ds.attrs["exclusions"]
    ):
        problems.append("attribute 'exclusions' must be a list of {rule, n_trials} records")
    if "trial" not in ds.dims:
        return
    if _need_vars(ds, ["rt"], problems, dims=("trial",)):
        rt = np.asarray(ds["rt"].values)
        if rt.dtype.kind != "f":
            problems.append(f"variable 'rt' must be float seconds, has dtype {rt.dtype}")
        else:
            if np.isinf(rt).any():
                problems.append(f"variable 'rt' has {int(np.isinf(rt).sum())} infinite values")
            negative = np.flatnonzero(rt < 0)
            if negative.size:
                problems.append(f"variable 'rt' has {negative.size} negative values (first at trial {negative[0]})")
            if ds["rt"].attrs.get("units") != "s":
                problems.append("variable 'rt' must have attribute units='s'")
    if _need_vars(ds, ["response"], problems, dims=("trial",)) and not _is_string(ds["response"].values):
        problems.append("variable 'response' must hold strings ('' for a missed response)")
    if _need_vars(ds, ["correct"], problems, dims=("trial",)):
        _check_bool_like(ds, "correct", problems)
    for name in ("subject", "stimulus_id", "condition", "session"):
        _check_string_coord(ds, name, "trial", problems)
    if "trial_index" not in ds.coords:
        problems.append("missing coordinate 'trial_index'")
    elif np.asarray(ds["trial_index"].values).dtype.kind not in "iu":
        problems.append("coordinate 'trial_index' must hold integers")
    elif all(n in ds.coords for n in ("subject", "session")):
        keys = np.char.add(
            np.char.add(ds["subject"].values.astype(str), "|"),
            np.char.add(np.char.add(ds["session"].values.astype(str), "|"), ds["trial_index"].values.astype(str)),
        )
        uniq, counts = np.unique(keys, return_counts=True)
        if (counts > 1).any():
            problems.append(
                f"{int((counts > 1).sum())} duplicate trials (same subject, session, trial_index), "
                f"for example {uniq[counts > 1][0].replace('|', ', ')}"
            )


def _check_human_labels(ds, problems):
    _need_dims(ds, ["stimulus_id", "label"], problems)
    _need_attrs(ds, PROVENANCE_ATTRS, problems)
    if "stimulus_id" in ds.dims:
        _check_ids(ds, "stimulus_id", problems)
    if _need_vars(ds, ["counts"], problems, dims=("stimulus_id", "label")):
        counts = np.asarray(ds["counts"].values)
        if counts.dtype.kind not in "iu" or (counts < 0).any():
            problems.append("variable 'counts' must hold non-negative integers")
    if "probability" in ds:
        p = np.asarray(ds["probability"].values, dtype=float)
        if not np.allclose(p.sum(axis=-1), 1.0, atol=1e-4):
            problems.append("variable 'probability' must sum to 1 over 'label' for every stimulus")


def _check_stimuli(ds, problems):
    _need_dims(ds, ["stimulus_id"], problems)
    _need_attrs(ds, PROVENANCE_ATTRS, problems)
    if "stimulus_id" in ds.dims:
        _check_ids(ds, "stimulus_id", problems)
    if _need_vars(ds, ["image"], problems, dims=("stimulus_id", "y", "x", "channel")):
        if ds["image"].dtype != np.uint8:
            problems.append(f"variable 'image' must be uint8, has dtype {ds['image'].dtype}")
        if ds.sizes.get("channel") not in (1, 3):
            problems.append(f"dimension 'channel' must have size 1 or 3, has {ds.sizes.get('channel')}")
    if "category" not in ds:
        problems.append("missing variable 'category'")
    elif ds["category"].dims != ("stimulus_id",) or not _is_string(ds["category"].values):
        problems.append("variable 'category' must be strings along 'stimulus_id'")


def _check_neural_responses(ds, problems):
    _need_dims(ds, ["stimulus_id", "neuroid"], problems)
    _need_attrs(ds, PROVENANCE_ATTRS, problems)
    if "stimulus_id" in ds.dims:
        _check_ids(ds, "stimulus_id", problems)
    if "neuroid" in ds.dims:
        _check_ids(ds, "neuroid", problems)
    if "response" not in ds:
        problems.append("missing variable 'response'")
        return
    dims = ds["response"].dims
    allowed = {"stimulus_id", "neuroid", "time_bin", "repetition"}
    if dims[:2] != ("stimulus_id", "neuroid") or not set(dims) <= allowed:
        problems.append(
            f"variable 'response' has dims {dims}; expected ('stimulus_id', 'neuroid') "
            "optionally followed by 'time_bin' and/or 'repetition'"
        )
    if ds["response"].dtype.kind != "f":
        problems.append(f"variable 'response' must be float, has dtype {ds['response'].dtype}")


def _check_neural_rdms(ds, problems):
    _need_dims(ds, ["rdm", "stimulus_id", "stimulus_id_2"], problems)
    _need_attrs(ds, PROVENANCE_ATTRS, problems)
    if "stimulus_id" in ds.dims:
        _check_ids(ds, "stimulus_id", problems)
    if {"stimulus_id", "stimulus_id_2"} <= set(ds.coords) and not np.array_equal(
        ds["stimulus_id"].values.astype(str), ds["stimulus_id_2"].values.astype(str)
    ):
        problems.append("coordinates 'stimulus_id' and 'stimulus_id_2' must be identical")
    for name in ("measure", "subject", "session", "region"):
        _check_string_coord(ds, name, "rdm", problems)
    if not _need_vars(ds, ["dissimilarity"], problems, dims=("rdm", "stimulus_id", "stimulus_id_2")):
        return
    d = np.asarray(ds["dissimilarity"].values, dtype=float)
    for i, name in enumerate(str(n) for n in np.asarray(ds["rdm"].values)):
        m = d[i]
        if not np.allclose(m, m.T, equal_nan=True, atol=1e-8):
            problems.append(f"rdm {name!r} is not symmetric")
        diagonal = np.diagonal(m)
        if not np.allclose(diagonal[~np.isnan(diagonal)], 0, atol=1e-8):
            problems.append(f"rdm {name!r} has a non-zero diagonal")


def _check_model_measures(ds, problems):
    _need_dims(ds, ["seed", "stimulus_id"], problems)
    _need_attrs(ds, MODEL_ATTRS, problems)
    if "stimulus_id" in ds.dims:
        _check_ids(ds, "stimulus_id", problems)
    if "seed" in ds.dims and np.asarray(ds["seed"].values).dtype.kind not in "iu":
        problems.append("coordinate 'seed' must hold integers")
    if "step" in ds.dims:
        steps = np.asarray(ds["step"].values)
        if steps.dtype.kind not in "iu" or not np.array_equal(steps, np.arange(1, steps.size + 1)):
            problems.append("coordinate 'step' must be the integers 1..n_steps")
    if "occlusion" in ds.dims:
        occ = np.asarray(ds["occlusion"].values, dtype=float)
        if ((occ < 0) | (occ > 1)).any():
            problems.append("coordinate 'occlusion' must be fractions in [0, 1]")
    if "pressures" in ds.attrs and not isinstance(ds.attrs["pressures"], dict):
        problems.append("attribute 'pressures' must be a mapping of pressure name to value")
    for name, needed in MODEL_VARIABLES.items():
        if name not in ds:
            continue
        dims = ds[name].dims
        missing = [d for d in ("seed", "stimulus_id", *needed) if d not in dims]
        if missing:
            problems.append(f"variable {name!r} lacks dimension(s) {missing}")
    if "halting_probability" in ds and "step" in ds["halting_probability"].dims:
        total = ds["halting_probability"].sum("step").values
        if not np.allclose(total[~np.isnan(total)], 1.0, atol=1e-4):
            problems.append("variable 'halting_probability' must sum to 1 over 'step'")
    if not any("stimulus_id" in ds[v].dims for v in ds.data_vars):
        problems.append("no variable is measured per stimulus (none has dimension 'stimulus_id')")


_CHECKS = {
    "human_trials": _check_human_trials,
    "human_labels": _check_human_labels,
    "stimuli": _check_stimuli,
    "neural_responses": _check_neural_responses,
    "neural_rdms": _check_neural_rdms,
    "model_measures": _check_model_measures,
}
