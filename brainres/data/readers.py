"""Low-level readers for the file formats datasets come in.

Each reader turns any failure into a :class:`~brainres.errors.DataFileError`
naming the file, so a corrupted or truncated download is reported as such
rather than as a stack trace from deep inside a parser.
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from brainres.errors import DataFileError


SEPARATORS = {",": "commas", "\t": "tabs", ";": "semicolons", "|": "vertical bars"}


def _separator_name(sep: str) -> str:
    return SEPARATORS.get(sep, repr(sep))


def _parse(text: str, sep: str) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=sep) if row]


def guess_separator(text: str, used: str) -> str | None:
    """Another separator that splits ``text`` into a consistent table of several columns, if one does."""
    sample = "\n".join(text.splitlines()[:50])  # quoted line breaks may cut a row: a guess, not a parse
    for candidate in SEPARATORS:
        if candidate == used:
            continue
        try:
            rows = _parse(sample, candidate)
        except csv.Error:
            continue
        if rows and len(rows[0]) > 1 and all(len(row) == len(rows[0]) for row in rows):
            return candidate
    return None


def _sep_hint(sep: str) -> str:
    toml = {"\t": '"\\t"'}.get(sep, f'"{sep}"')
    return f"pass sep={sep!r} (in a pipeline's [[dataset]]: sep = {toml})"


def read_table(path, sep: str | None = None) -> pd.DataFrame:
    """Read a CSV/TSV file as strings (types are the caller's business).

    ``sep=None`` picks tab for ``.tsv``/``.tab`` files and comma otherwise. A
    row with more or fewer fields than the header (a truncated file, a stray
    separator) is an error naming its line, never silently padded. A file whose
    fields are separated by something else than ``sep`` (semicolons in a
    ``.csv``, tabs in a ``.txt``) is an error that names the separator to pass.
    """
    path = Path(path)
    if sep is None:
        sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    if not isinstance(sep, str) or len(sep) != 1:
        raise DataFileError(path, f"sep must be one character, got {sep!r}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            text = handle.read()
        rows = _parse(text, sep)
    except FileNotFoundError:
        raise DataFileError(path, "no such file") from None
    except IsADirectoryError:
        raise DataFileError(path, "is a folder, not a table") from None
    except PermissionError:
        raise DataFileError(path, "cannot be read: permission denied") from None
    except UnicodeDecodeError as err:
        raise DataFileError(path, f"cannot be parsed as a table: not UTF-8 text ({err})") from None
    except csv.Error as err:
        raise DataFileError(path, f"cannot be parsed as a table ({err})") from None
    rows = [row for row in rows if row]  # blank lines carry no trials
    if not rows:
        raise DataFileError(path, "the file is empty")
    header = [name.strip() for name in rows[0]]
    if len(header) == 1:
        other = guess_separator(text, sep)
        if other is not None:
            raise DataFileError(path, f"the header is one column {header[0]!r}: the fields look separated by "
                                      f"{_separator_name(other)}, not {_separator_name(sep)}; {_sep_hint(other)}")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataFileError(path, f"column name(s) appear twice in the header: {duplicates}")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            other = guess_separator(text, sep)
            if other is not None:
                hint = (f"; the fields look separated by {_separator_name(other)}, not {_separator_name(sep)}: "
                        f"{_sep_hint(other)}")
            elif sep == "," and len(row) > len(header):
                hint = (" (a stray separator, or decimal commas in a comma-separated file? Quote such numbers, or "
                        "save the table with another separator, e.g. sep=';' with decimal=',')")
            else:
                hint = " (truncated file or stray separator?)"
            raise DataFileError(path, f"line {line} has {len(row)} fields, the header has {len(header)}{hint}")
    return pd.DataFrame(rows[1:], columns=header, dtype=object)


def read_zipped_table(path, member_suffix: str = ".csv") -> pd.DataFrame:
    """Read the single CSV inside a zip archive."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.endswith(member_suffix) and not m.startswith("__MACOSX")]
            if len(members) != 1:
                raise DataFileError(path, f"expected one {member_suffix} file inside, found {members}")
            with archive.open(members[0]) as handle:
                return pd.read_csv(handle, dtype=str, keep_default_na=False, on_bad_lines="error")
    except zipfile.BadZipFile as err:
        raise DataFileError(path, f"not a valid zip archive ({err})") from None
    except FileNotFoundError:
        raise DataFileError(path, "no such file") from None
    except pd.errors.ParserError as err:
        raise DataFileError(path, f"cannot be parsed as a table ({err})") from None


def read_image(path, mode: str = "RGB") -> np.ndarray:
    """An image as a ``(y, x, channel)`` uint8 array."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()  # force decoding now: truncation shows up here
            array = np.asarray(image.convert(mode), dtype=np.uint8)
    except FileNotFoundError:
        raise DataFileError(path, "no such image file") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataFileError(path, f"corrupted or truncated image ({err})") from None
    return array[..., None] if array.ndim == 2 else array


def read_images(paths, mode: str = "RGB") -> np.ndarray:
    """Stack images of equal size into ``(n, y, x, channel)`` uint8."""
    arrays = [read_image(p, mode) for p in paths]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        sizes = {}
        for p, a in zip(paths, arrays):
            sizes.setdefault(a.shape, p)
        raise DataFileError(paths[0], f"images differ in size: {sizes}")
    return np.stack(arrays) if arrays else np.zeros((0, 0, 0, 3), np.uint8)


def read_mat(path) -> dict:
    """A MATLAB v5 file as a dict of numpy arrays / structs (squeezed)."""
    from scipy.io import loadmat

    path = Path(path)
    try:
        return loadmat(path, squeeze_me=True, struct_as_record=False)
    except FileNotFoundError:
        raise DataFileError(path, "no such file") from None
    except (ValueError, TypeError, OSError, IndexError, EOFError, KeyError) as err:
        # scipy reports a short or damaged file through any of these
        raise DataFileError(path, f"not a readable MATLAB file ({type(err).__name__}: {err})") from None


def read_idx(path) -> np.ndarray:
    """An IDX file (MNIST format), optionally gzip-compressed."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise DataFileError(path, "no such file") from None
    except (OSError, EOFError) as err:
        raise DataFileError(path, f"corrupted or truncated gzip stream ({err})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataFileError(path, "not an unsigned-byte IDX file (bad magic number)")
    n_dims = data[3]
    header_end = 4 + 4 * n_dims
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(n_dims))
    expected = int(np.prod(shape))
    if len(data) - header_end != expected:
        raise DataFileError(path, f"truncated: header announces {expected} bytes of data, found {len(data) - header_end}")
    return np.frombuffer(data, dtype=np.uint8, offset=header_end).reshape(shape)


def read_npy(path) -> np.ndarray:
    """A ``.npy`` array (no pickles)."""
    path = Path(path)
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataFileError(path, "no such file") from None
    except (ValueError, OSError, EOFError) as err:
        raise DataFileError(path, f"not a readable .npy array ({err})") from None
