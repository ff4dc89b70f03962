"""Building validated human-trials datasets from tables of trials.

Every loader of behavioural data (the registered datasets and a lab's own
file through :func:`read_trials`) goes through :func:`trials_from_table`, so
the same checks apply everywhere: required columns, numeric non-negative RTs,
no duplicate trials, missed responses kept and counted, exclusions recorded.

What is possible but implausible is refused with a message that says what to
do, and each refusal has an option that accepts it where an experiment really
is like that: RTs whose scale contradicts the declared unit
(``allow_unusual_rts``), rows that repeat another row exactly when the table
has no trial index (``allow_duplicates``), subjects or stimuli left without
one answered trial (``allow_unusable``). Decimal commas are read with
``decimal=","``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from brainres.data.readers import read_table
from brainres.data.schema import validate
from brainres.errors import DataFileError, ProblemsError

REQUIRED = ("subject", "stimulus_id", "rt", "response")
OPTIONAL = ("correct", "category", "condition", "session", "trial_index")
MISSING_TOKENS = ("", "na", "nan", "NaN", "NA", "None", "none", "null")
RT_UNITS = {"s": 1.0, "ms": 1e-3}
DECIMALS = (".", ",")
# A median reaction time outside these bounds (seconds) is taken as a sign of the wrong unit.
PLAUSIBLE_MEDIAN_RT = (0.05, 30.0)
_DECIMAL_COMMA = r"^[+-]?\d*,\d+(?:[eE][+-]?\d+)?$"
_DECIMAL_POINT = r"^[+-]?\d*\.\d+(?:[eE][+-]?\d+)?$"


def _rows(mask: np.ndarray, limit: int = 5) -> str:
    """1-based data-row numbers (the header is line 1, so file line = row + 1)."""
    rows = np.flatnonzero(mask)[:limit] + 1
    more = int(mask.sum()) - len(rows)
    return ", ".join(map(str, rows)) + (f" (and {more} more)" if more > 0 else "")


def _preview(values, limit: int = 5) -> str:
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f" (and {len(values) - limit} more)" if len(values) > limit else "")


def _option(name: str, value) -> str:
    """How to pass an option, in Python and in a pipeline's [[dataset]] table."""
    toml = {True: "true", False: "false"}.get(value, f'"{value}"' if isinstance(value, str) else value)
    return f"{name}={value!r} (in a pipeline's [[dataset]]: {name} = {toml})"


def _parse_rts(rt_text: np.ndarray, is_missing: np.ndarray, *, decimal: str, source, column: str) -> np.ndarray:
    """Numbers of the RT column (NaN where missing); a decimal mark that does not match is named."""
    answered = rt_text[~is_missing]
    if decimal == ",":
        points = answered[pd.Series(answered, dtype=object).str.match(_DECIMAL_POINT).to_numpy(bool)]
        if points.size:
            raise DataFileError(source, f"column {column!r} has numbers with a decimal point (e.g. {points[0]!r}), "
                                        f"but decimal=',' was given; pass {_option('decimal', '.')}")
        rt_text = np.char.replace(rt_text.astype(str), ",", ".")
    rt = pd.to_numeric(pd.Series(np.where(is_missing, "nan", rt_text)), errors="coerce").to_numpy(float)
    non_numeric = np.isnan(rt) & ~is_missing
    if non_numeric.any():
        bad = rt_text[non_numeric]
        example = bad[0]
        if decimal == "." and pd.Series(bad, dtype=object).str.match(_DECIMAL_COMMA).all():
            raise DataFileError(source, f"column {column!r} has numbers with a decimal comma (e.g. {example!r}) in "
                                        f"data row(s) {_rows(non_numeric)}; pass {_option('decimal', ',')}")
        raise DataFileError(source, f"column {column!r} has non-numeric reaction times "
                                    f"(e.g. {example!r}) in data row(s) {_rows(non_numeric)}")
    return rt


def _check_rt_scale(raw: np.ndarray, rt_unit: str, *, source, column: str) -> None:
    """Refuse RTs whose typical size contradicts the declared unit, naming the unit they look like."""
    answered = raw[~np.isnan(raw)]
    if answered.size == 0:
        return
    median = float(np.median(answered))
    seconds = median * RT_UNITS[rt_unit]
    low, high = PLAUSIBLE_MEDIAN_RT
    if low <= seconds <= high:
        return
    unit = {"s": "seconds", "ms": "milliseconds"}[rt_unit]
    if seconds > high and rt_unit == "s":
        guess = f"the column looks like milliseconds: pass {_option('rt_unit', 'ms')}"
    elif seconds < low and rt_unit == "ms":
        guess = f"the column looks like seconds: pass {_option('rt_unit', 's')}"
    else:
        guess = "check the unit of the column"
    size = f"{median:g} s" if rt_unit == "s" else f"{median:g} ms ({seconds:g} s)"
    raise DataFileError(source, f"column {column!r} has a median reaction time of {size}, implausible for a "
                                f"reaction time (expected {low:g} to {high:g} s); {guess}; or, if these really are "
                                f"{unit}, pass {_option('allow_unusual_rts', True)}")


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
    decimal: str = ".",
    allow_duplicates: bool = False,
    allow_unusual_rts: bool = False,
    allow_unusable: bool = False,
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
    decimal : {".", ","}
        Decimal mark of the RT column (``","`` for ``0,512``).
    allow_duplicates : bool
        Keep rows that repeat another row exactly (when the table has no
        trial index column, they become separate trials, numbered in table order).
    allow_unusual_rts : bool
        Accept a median RT outside 0.05 to 30 s (after the unit is applied).
    allow_unusable : bool
        Keep subjects and stimuli whose every (not excluded) trial is a missed
        response; by default an error listing them.

    Returns
    -------
    xarray.Dataset
        Kind ``human_trials``, trials in the order of the table.
    """
    problems = []
    if rt_unit not in RT_UNITS:
        problems.append(f"rt_unit must be one of {sorted(RT_UNITS)}, got {rt_unit!r}")
    if decimal not in DECIMALS:
        problems.append(f"decimal must be '.' or ',', got {decimal!r}")
    for name, bound in (("min_rt", min_rt), ("max_rt", max_rt)):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))
                                  or not np.isfinite(bound) or bound < 0):
            problems.append(f"{name} must be a finite number of seconds >= 0, got {bound!r}")
    if not problems and min_rt is not None and max_rt is not None and min_rt >= max_rt:
        problems.append(f"min_rt ({min_rt:g} s) must be below max_rt ({max_rt:g} s)")
    if problems:
        raise ProblemsError(problems, str(source))
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
    rt = _parse_rts(rt_text, is_missing_rt, decimal=decimal, source=source, column=mapping["rt"])
    if np.isinf(rt).any():
        raise DataFileError(source, f"column {mapping['rt']!r} has infinite values in data row(s) {_rows(np.isinf(rt))}")
    negative = rt < 0
    if negative.any():
        raise DataFileError(source, f"column {mapping['rt']!r} has negative reaction times in data row(s) {_rows(negative)}")
    if not allow_unusual_rts:
        _check_rt_scale(rt, rt_unit, source=source, column=mapping["rt"])
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
    if trial_index_text is None and not allow_duplicates:
        repeated = table.astype(str).apply(lambda values: values.str.strip()).duplicated(keep=False).to_numpy()
        if repeated.any():
            raise DataFileError(
                source, f"{int(repeated.sum())} rows repeat another row exactly (data row(s) {_rows(repeated)}): "
                        "a trial pasted twice? The table has no trial index column, so they would count as "
                        "separate trials. Remove the copies, add a trial index column (columns={'trial_index': ...}), "
                        f"or, if the experiment really repeated identical trials, {_option('allow_duplicates', True)}")
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
    answered = ~missed
    if (min_rt is not None or max_rt is not None) and answered.any() and not (keep & answered).any():
        raise DataFileError(source, f"min_rt = {min_rt} and max_rt = {max_rt} (seconds) remove every answered trial "
                                    f"(RTs range from {np.nanmin(rt):g} to {np.nanmax(rt):g} s); are the bounds in "
                                    "seconds?")
    if not allow_unusable:
        usable = keep & answered
        for ours, values in (("subject", subject), ("stimulus_id", stimulus)):
            present = pd.unique(values[keep])  # ones whose every trial was excluded are gone (and counted)
            with_usable = set(values[usable])
            empty = [v for v in present if v not in with_usable]
            if empty:
                noun = "subject(s)" if ours == "subject" else "stimulus/stimuli"
                raise DataFileError(
                    source, f"{len(empty)} {noun} in column {mapping[ours]!r} have no usable trial (every trial a "
                            f"missed response): {_preview(empty)}; they would enter every mean as a gap. Remove them, "
                            f"or, to keep them with no RT, {_option('allow_unusable', True)}")
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
    decimal: str = ".",
    min_rt: float | None = None,
    max_rt: float | None = None,
    allow_duplicates: bool = False,
    allow_unusual_rts: bool = False,
    allow_unusable: bool = False,
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
        Unit of your RT column. A median RT that contradicts it (570 "seconds")
        is an error that suggests the other unit.
    sep : str, optional
        Field separator (default: tab for ``.tsv``/``.tab``, else comma). A file
        separated by something else is an error naming the separator to pass.
    decimal : {".", ","}
        Decimal mark of the RT column (``","`` for ``0,512``).
    min_rt, max_rt : float, optional
        Exclusion bounds in seconds, recorded in ``attrs["exclusions"]`` with counts.
    allow_duplicates : bool
        Accept rows that repeat another row exactly in a table without a trial
        index column (by default an error: usually a row pasted twice).
    allow_unusual_rts : bool
        Accept a median RT outside 0.05 to 30 seconds.
    allow_unusable : bool
        Keep subjects and stimuli whose every trial is a missed response.
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
        table, source=path, columns=columns, rt_unit=rt_unit, min_rt=min_rt, max_rt=max_rt, decimal=decimal,
        allow_duplicates=allow_duplicates, allow_unusual_rts=allow_unusual_rts, allow_unusable=allow_unusable,
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
