"""Building validated human-trials datasets from tables of trials.

Every loader of behavioural data (the registered datasets and a lab's own
file through :func:`read_trials`) goes through :func:`trials_from_table`, so
the same checks apply everywhere: required columns, numeric non-negative RTs,
no duplicate trials, missed responses kept and counted, exclusions recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from brainres.data.readers import read_table
from brainres.data.schema import validate
from brainres.errors import DataFileError

REQUIRED = ("subject", "stimulus_id", "rt", "response")
OPTIONAL = ("correct", "category", "condition", "session", "trial_index")
MISSING_TOKENS = ("", "na", "nan", "NaN", "NA", "None", "none", "null")
RT_UNITS = {"s": 1.0, "ms": 1e-3}


def _rows(mask: np.ndarray, limit: int = 5) -> str:
    """1-based data-row numbers (the header is line 1, so file line = row + 1)."""
    rows = np.flatnonzero(mask)[:limit] + 1
    more = int(mask.sum()) - len(rows)
    return ", ".join(map(str, rows)) + (f" (and {more} more)" if more > 0 else "")


def trials_from_table(
    table: pd.DataFrame,
    *,
    source,
    columns: Mapping[str, str] | None = None,
    rt_unit: str = "s",
    min_rt: float | None = None,
    max_rt: float | None = None,
    exclusions: list[dict] | None = None,
    extra_coords: Mapping[str, str] | None = None,
    attrs: Mapping | None = None,
) -> xr.Dataset:
    """Turn a table of trials (one row per trial, string cells) into a human-trials dataset.

    Parameters
    ----------
    table : pandas.DataFrame
        Cells as strings, as read by :func:`brainres.data.readers.read_table`.
    source : str or path
        Named in every error (usually the file the table came from).
    columns : mapping, optional
        brainres name -> column name in ``table``, for names that differ.
        Needed: ``subject, stimulus_id, rt, response``; optional: ``correct,
        category, condition, session, trial_index``. Without ``correct``,
        correctness is ``response == category``.
    rt_unit : {"s", "ms"}
        Unit of the RT column; stored RTs are always seconds.
    min_rt, max_rt : float, optional
        Exclude trials faster/slower than these (seconds); recorded with counts.
    exclusions : list of dict, optional
        Exclusions already applied by the caller (``{"rule", "n_trials"}``), kept in the attrs.
    extra_coords : mapping, optional
        More per-trial string coordinates: brainres name -> column name.
    attrs : mapping, optional
        Dataset attributes (``dataset_id``, ``source``, ``license``, ``citation``...).

    Returns
    -------
    xarray.Dataset
        Kind ``human_trials``, trials in the order of the table.
    """
    if rt_unit not in RT_UNITS:
        raise ValueError(f"rt_unit must be one of {sorted(RT_UNITS)}, got {rt_unit!r}")
    mapping = {name: name for name in REQUIRED + OPTIONAL}
    mapping.update(columns or {})
    available = list(table.columns)
    missing = [f"{ours!r}" + (f" (column {mapping[ours]!r})" if mapping[ours] != ours else "")
               for ours in REQUIRED if mapping[ours] not in available]
    if "correct" not in (columns or {}) and mapping["correct"] not in available and mapping["category"] not in available:
        missing.append("'correct' or 'category' (to score responses)")
    for ours, theirs in (extra_coords or {}).items():
        if theirs not in available:
            missing.append(f"{ours!r} (column {theirs!r})")
    if missing:
        raise DataFileError(source, f"missing column(s) {', '.join(missing)}; the file has columns {available}")
    if len(table) == 0:
        raise DataFileError(source, "the table has no trials")

    def column(ours):
        return table[mapping[ours]].astype(str).str.strip().to_numpy() if mapping[ours] in available else None

    rt_text = column("rt")
    is_missing_rt = np.isin(rt_text, MISSING_TOKENS)
    rt = pd.to_numeric(pd.Series(np.where(is_missing_rt, "nan", rt_text)), errors="coerce").to_numpy(float)
    non_numeric = np.isnan(rt) & ~is_missing_rt
    if non_numeric.any():
        example = rt_text[np.flatnonzero(non_numeric)[0]]
        raise DataFileError(source, f"column {mapping['rt']!r} has non-numeric reaction times "
                                    f"(e.g. {example!r}) in data row(s) {_rows(non_numeric)}")
    if np.isinf(rt).any():
        raise DataFileError(source, f"column {mapping['rt']!r} has infinite values in data row(s) {_rows(np.isinf(rt))}")
    negative = rt < 0
    if negative.any():
        raise DataFileError(source, f"column {mapping['rt']!r} has negative reaction times in data row(s) {_rows(negative)}")
    rt = rt * RT_UNITS[rt_unit]

    subject, stimulus = column("subject"), column("stimulus_id")
    for ours, values in (("subject", subject), ("stimulus_id", stimulus)):
        empty = values == ""
        if empty.any():
            raise DataFileError(source, f"column {mapping[ours]!r} is empty in data row(s) {_rows(empty)}")

    response = column("response")
    missed = np.isnan(rt) | np.isin(response, MISSING_TOKENS)
    response = np.where(missed, "", response)
    rt = np.where(missed, np.nan, rt)

    category = column("category")
    if mapping["correct"] in available:
        correct_text = np.char.lower(column("correct").astype(str))
        valid = np.isin(correct_text, ["0", "1", "true", "false", "0.0", "1.0"]) | missed
        if not valid.all():
            raise DataFileError(source, f"column {mapping['correct']!r} must be 0/1 or true/false; "
                                        f"bad value(s) in data row(s) {_rows(~valid)}")
        correct = np.isin(correct_text, ["1", "true", "1.0"]) & ~missed
    else:
        correct = (response == category) & ~missed

    session = column("session")
    session = session if session is not None else np.full(len(table), "1")
    trial_index_text = column("trial_index")
    if trial_index_text is None:
        # number trials in table order within subject and session
        trial_index = pd.DataFrame({"s": subject, "e": session}).groupby(["s", "e"], sort=False).cumcount().to_numpy()
    else:
        trial_index = pd.to_numeric(pd.Series(trial_index_text), errors="coerce").to_numpy()
        bad = np.isnan(trial_index) | (trial_index != np.round(trial_index))
        if bad.any():
            raise DataFileError(source, f"column {mapping['trial_index']!r} must hold integers; bad in data row(s) {_rows(bad)}")
        trial_index = trial_index.astype(np.int64)
    keys = pd.DataFrame({"subject": subject, "session": session, "trial_index": trial_index})
    duplicated = keys.duplicated(keep=False).to_numpy()
    if duplicated.any():
        first = keys[duplicated].iloc[0]
        raise DataFileError(
            source, f"{int(duplicated.sum())} rows are duplicate trials (same subject, session and trial index), "
                    f"e.g. subject {first.subject!r}, session {first.session!r}, trial {first.trial_index}; "
                    f"data row(s) {_rows(duplicated)}")

    condition = column("condition")
    condition = condition if condition is not None else np.full(len(table), "")
    keep = np.ones(len(table), bool)
    applied = list(exclusions or [])
    for bound, name, test in ((min_rt, "faster than", np.less), (max_rt, "slower than", np.greater)):
        if bound is not None:
            drop = test(rt, bound) & ~np.isnan(rt)
            applied.append({"rule": f"trials with rt {name} {bound} s removed", "n_trials": int(drop.sum())})
            keep &= ~drop
    applied.append({"rule": "missed responses kept with rt NaN and response ''", "n_trials": int(missed[keep].sum())})

    coords = {
        "subject": ("trial", subject[keep]),
        "stimulus_id": ("trial", stimulus[keep]),
        "condition": ("trial", condition[keep]),
        "session": ("trial", session[keep]),
        "trial_index": ("trial", trial_index[keep]),
    }
    if category is not None:
        coords["category"] = ("trial", category[keep])
    for ours, theirs in (extra_coords or {}).items():
        coords[ours] = ("trial", table[theirs].astype(str).str.strip().to_numpy()[keep])
    ds = xr.Dataset(
        {
            "rt": ("trial", rt[keep], {"units": "s", "long_name": "reaction time"}),
            "response": ("trial", response[keep].astype(str)),
            "correct": ("trial", correct[keep]),
        },
        coords=coords,
    )
    ds.attrs.update(attrs or {})
    ds.attrs["exclusions"] = applied
    ds.attrs["n_missed"] = int(missed[keep].sum())
    ds.attrs["brainres_kind"] = "human_trials"
    return ds


def read_trials(
    path,
    *,
    columns: Mapping[str, str] | None = None,
    rt_unit: str = "s",
    sep: str | None = None,
    min_rt: float | None = None,
    max_rt: float | None = None,
    dataset_id: str | None = None,
    source: str | None = None,
    license: str = "unknown",
    citation: str = "unknown",
) -> xr.Dataset:
    """Read a lab's own trial table (CSV or TSV) into a validated human-trials dataset.

    Parameters
    ----------
    path : str or Path
        The file; ``.tsv``/``.tab`` are read tab-separated unless ``sep`` says otherwise.
    columns : mapping, optional
        brainres name -> your column name, e.g. ``{"rt": "RT", "subject": "participant",
        "stimulus_id": "image", "response": "key"}``.
    rt_unit : {"s", "ms"}
        Unit of your RT column.
    min_rt, max_rt : float, optional
        Exclusion bounds in seconds, recorded in ``attrs["exclusions"]`` with counts.
    dataset_id, source, license, citation : str, optional
        Provenance attributes (``dataset_id`` defaults to the file name).

    Returns
    -------
    xarray.Dataset
        Kind ``human_trials``.

    Examples
    --------
    >>> trials = read_trials("rts.csv", columns={"rt": "RT_ms", "stimulus_id": "image"},
    ...                      rt_unit="ms")  # doctest: +SKIP
    """
    path = Path(path)
    table = read_table(path, sep=sep)
    ds = trials_from_table(
        table, source=path, columns=columns, rt_unit=rt_unit, min_rt=min_rt, max_rt=max_rt,
        attrs={"dataset_id": dataset_id or path.stem, "source": source or str(path),
               "license": license, "citation": citation},
    )
    return validate(ds, "human_trials", source=str(path))


def require_images(trials: xr.Dataset, stimuli: xr.Dataset) -> None:
    """Raise :class:`StimulusMismatchError` naming every trial stimulus without an image."""
    from brainres.errors import StimulusMismatchError

    shown = set(np.asarray(trials["stimulus_id"].values).astype(str))
    have = set(np.asarray(stimuli["stimulus_id"].values).astype(str))
    missing = sorted(shown - have)
    if missing:
        raise StimulusMismatchError(
            missing, [], left=f"stimuli of {stimuli.attrs.get('dataset_id', 'the stimulus set')}",
            right=f"trials of {trials.attrs.get('dataset_id', 'the trial set')}",
        )
