"""A lab's own stimuli: a folder of image files as a ``stimuli`` dataset.

:func:`read_stimuli` reads every image below a folder (sub-folders too), in
natural order of the relative path, and labels each image with a category
from its sub-folder or from a table. Mistakes (no images, two files with one
id, images of different sizes, an image missing from the category table) are
:class:`~brainres.errors.DataFileError` naming the files concerned.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from brainres.data.readers import read_image, read_table
from brainres.data.schema import validate
from brainres.data.trials import _rows
from brainres.errors import DataFileError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
# PIL modes that hold one grey value per pixel (alpha, if any, is dropped on reading)
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
UNKNOWN_CATEGORY = "unknown"


def natural_key(text: str):
    """Sort 'oven2' before 'oven10'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _listing(items, limit: int = 5) -> str:
    items = [str(item) for item in items]
    more = len(items) - limit
    return ", ".join(items[:limit]) + (f" (and {more} more)" if more > 0 else "")


def find_images(folder: Path) -> list[Path]:
    """Image files below ``folder`` as relative paths, in natural order.

    Hidden files and folders (names starting with ``.``) are skipped: they are
    editor or operating-system leftovers such as macOS ``._name.png`` files,
    which carry an image suffix but no image.
    """
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.append(relative)
    return sorted(found, key=lambda p: natural_key(p.as_posix()))


def _stimulus_ids(folder: Path, files: list[Path], ids: str) -> list[str]:
    if ids == "stem":
        names = [f.stem for f in files]
    elif ids == "path":
        names = [f.with_suffix("").as_posix() for f in files]
    else:
        raise ValueError(f"ids must be 'stem' or 'path', got {ids!r}")
    first: dict[str, Path] = {}
    clashes = []
    for name, file in zip(names, files):
        if name in first:
            clashes.append(f"{first[name].as_posix()} and {file.as_posix()} (id {name!r})")
        else:
            first[name] = file
    if clashes:
        hint = ('use ids="path" to name stimuli by their path' if ids == "stem"
                else "rename one of each pair (files that differ only in their extension)")
        raise DataFileError(folder, f"{len(clashes)} stimulus id(s) are shared by two files: "
                                    f"{_listing(clashes)}; {hint}")
    return names


def _folder_categories(folder: Path, files: list[Path]) -> list[str]:
    top_level = [f.as_posix() for f in files if len(f.parts) == 1]
    if top_level:
        raise DataFileError(folder, f"categories='folder' needs every image in a sub-folder named after its "
                                    f"category, but {len(top_level)} image(s) lie directly in the folder: "
                                    f"{_listing(top_level)}; move them, or pass categories=<table> or None")
    return [f.parent.name for f in files]


def _image_of_row(keys: np.ndarray, key_column: str, files: list[Path], names: list[str]) -> np.ndarray:
    """Index of the image each table row names, -1 for none."""
    if key_column == "stimulus_id":
        lookup = {name: i for i, name in enumerate(names)}
    else:
        # a file may be named with or without its extension, with either slash
        keys = [k.replace("\\", "/").removeprefix("./") for k in keys]
        lookup = {f.as_posix(): i for i, f in enumerate(files)}
        lookup.update({f.with_suffix("").as_posix(): i for i, f in enumerate(files)})
    return np.array([lookup.get(k, -1) for k in keys], dtype=np.int64)


def _table_categories(table_path, files: list[Path], names: list[str]) -> list[str]:
    """Categories from a table with ``category`` and ``stimulus_id`` (or ``file``) columns."""
    table_path = Path(table_path)
    table = read_table(table_path)
    if "category" not in table.columns or not {"stimulus_id", "file"} & set(table.columns):
        raise DataFileError(table_path, "a category table needs a 'category' column and a 'stimulus_id' or "
                                        f"'file' column; the file has columns {list(table.columns)}")
    key_column = "stimulus_id" if "stimulus_id" in table.columns else "file"
    keys = np.array([str(k).strip() for k in table[key_column]], dtype=object)
    category = np.array([str(c).strip() for c in table["category"]], dtype=object)
    image_of_row = _image_of_row(keys, key_column, files, names)
    empty = category == ""
    if empty.any():
        raise DataFileError(table_path, f"column 'category' is empty in data row(s) {_rows(empty)}")
    matched = image_of_row >= 0
    repeated = matched & (np.bincount(image_of_row[matched], minlength=len(files))[image_of_row] > 1)
    if repeated.any():
        raise DataFileError(table_path, f"column {key_column!r} names the same image twice "
                                        f"(e.g. {keys[repeated][0]!r}) in data row(s) {_rows(repeated)}")
    problems = []
    if not matched.all():
        problems.append(f"{int((~matched).sum())} row(s) match no image: "
                        f"{_listing(repr(k) for k in keys[~matched])} in data row(s) {_rows(~matched)}")
    unlisted = sorted(set(range(len(files))) - set(image_of_row[matched]))
    if unlisted:
        names_unlisted = _listing(files[i].as_posix() for i in unlisted)
        problems.append(f"{len(unlisted)} image(s) are not in the table: {names_unlisted}")
    if problems:
        what = "stimulus ids" if key_column == "stimulus_id" else "file paths relative to the stimulus folder"
        raise DataFileError(table_path, "; ".join(problems) + f" (column {key_column!r} holds {what})")
    by_image = np.empty(len(files), dtype=object)
    by_image[image_of_row] = category
    return [str(c) for c in by_image]


def _image_mode(path: Path) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:  # reads the header only
            return image.mode
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataFileError(path, f"corrupted or truncated image ({err})") from None


def _channels(folder: Path, files: list[Path], channels) -> int:
    if channels is None:
        grey = all(_image_mode(folder / f) in GREY_MODES for f in files)
        return 1 if grey else 3
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    return channels


def _target_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    height, width = (size, size) if np.ndim(size) == 0 else tuple(size)
    if not all(isinstance(v, (int, np.integer)) and v > 0 for v in (height, width)):
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    return int(height), int(width)


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    if array.shape[:2] == (height, width):
        return array
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    resized = np.asarray(image.resize((width, height), Image.Resampling.LANCZOS), dtype=np.uint8)
    return resized[..., None] if resized.ndim == 2 else resized


def _require_one_size(folder: Path, files: list[Path], arrays: list[np.ndarray]) -> None:
    example: dict[tuple[int, int], str] = {}
    for file, array in zip(files, arrays):
        example.setdefault(array.shape[:2], file.as_posix())
    if len(example) > 1:
        listed = "; ".join(f"{h}x{w} (e.g. {name})" for (h, w), name in example.items())
        raise DataFileError(folder, f"images differ in size (height x width): {listed}; "
                                    "pass size=(height, width) to resize them all")


def read_stimuli(
    folder,
    *,
    categories="folder",
    ids: str = "stem",
    channels: int | None = None,
    size=None,
    dataset_id: str | None = None,
    source: str | None = None,
    license: str = "unknown",
    citation: str = "unknown",
) -> xr.Dataset:
    """Read a folder of images into a validated ``stimuli`` dataset.

    Every file below ``folder`` (sub-folders included) ending in ``.png``,
    ``.jpg``, ``.jpeg``, ``.bmp``, ``.gif``, ``.tif`` or ``.tiff`` (any case)
    is one stimulus; hidden files and folders are skipped. Stimuli are ordered
    by relative path in natural order (``img2`` before ``img10``).

    Parameters
    ----------
    folder : str or Path
        The stimulus folder.
    categories : "folder", str or Path, or None
        ``"folder"``: an image's category is the name of the sub-folder it lies
        in (``cats/tabby.png`` -> ``"cats"``). A path: a CSV/TSV table with a
        ``category`` column and a ``stimulus_id`` column (matched against the
        stimulus ids) or, when it has none, a ``file`` column (matched against
        the path relative to ``folder``, with or without extension); the table
        must list every image exactly once and nothing else. ``None``: every
        category is ``"unknown"`` (noted in ``attrs["notes"]``).
    ids : {"stem", "path"}
        Stimulus id = the file name without extension, or the relative path
        without extension (``"cats/tabby"``).
    channels : {1, 3, None}
        Grey or RGB. ``None``: 1 when every image is greyscale, else 3.
    size : int or (int, int), optional
        Resize every image to ``(height, width)`` (an int means square) with
        Lanczos filtering. Without it all images must have the same size.
    dataset_id, source, license, citation : str, optional
        Provenance attributes; ``dataset_id`` defaults to the folder's name and
        ``source`` to its absolute path.

    Returns
    -------
    xarray.Dataset
        Kind ``stimuli``: ``image`` (stimulus_id, y, x, channel) uint8,
        ``category`` and ``file`` (the relative path) per stimulus.

    Raises
    ------
    DataFileError
        Naming the folder, table or files concerned: no such folder, no
        images, a stimulus id shared by two files, images of different sizes
        without ``size``, images missing from (or rows unmatched in) the
        category table, unreadable images.

    Examples
    --------
    >>> stimuli = read_stimuli("my_stimuli/", size=224)  # doctest: +SKIP
    >>> stimuli = read_stimuli("my_stimuli/", categories="labels.csv", ids="path")  # doctest: +SKIP
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFileError(folder, "not a folder" if folder.exists() else "no such folder")
    files = find_images(folder)
    if not files:
        raise DataFileError(folder, f"no image files ({', '.join(IMAGE_SUFFIXES)}) in the folder or its sub-folders")
    names = _stimulus_ids(folder, files, ids)
    notes = []
    if categories is None:
        labels = [UNKNOWN_CATEGORY] * len(files)
        notes.append(f"no categories given: every category is {UNKNOWN_CATEGORY!r}")
    elif isinstance(categories, str) and categories == "folder":
        labels = _folder_categories(folder, files)
    else:
        labels = _table_categories(categories, files, names)

    mode = "L" if _channels(folder, files, channels) == 1 else "RGB"
    target = _target_size(size)
    arrays = [read_image(folder / f, mode) for f in files]
    if target is None:
        _require_one_size(folder, files, arrays)
    else:
        arrays = [_resize(a, *target) for a in arrays]

    ds = xr.Dataset(
        {"image": (("stimulus_id", "y", "x", "channel"), np.stack(arrays)),
         "category": ("stimulus_id", np.asarray(labels, dtype=str)),
         "file": ("stimulus_id", np.asarray([f.as_posix() for f in files], dtype=str))},
        coords={"stimulus_id": np.asarray(names, dtype=str)},
    )
    absolute = folder.resolve()
    ds.attrs.update(dataset_id=dataset_id or absolute.name, source=source or str(absolute), license=license,
                    citation=citation, brainres_kind="stimuli")
    if notes:
        ds.attrs["notes"] = "; ".join(notes)
    return validate(ds, "stimuli", source=str(folder))
