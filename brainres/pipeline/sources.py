"""What a pipeline's data references point at: a registered dataset, or a user's file or folder.

``data = "geirhos2021-edge"`` names a registered dataset; ``data =
"trials.tsv"`` or ``stimuli = "images"`` name a file or folder relative to the
pipeline file, read with the options of its ``[[dataset]]`` table (column
mapping, RT unit, where categories come from...). A resolved :class:`Source`
carries a digest of the file contents, so editing a user's file makes the
tasks that read it stale, while moving the project keeps them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import xarray as xr

from brainres.errors import BrainresError
from brainres.settings import (
    Boolean, Choice, Integer, Mapping, Optional, Real, Settings, SettingsError, Text, setting,
)

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".txt")


class SourceError(BrainresError, ValueError):
    """A data reference is neither a registered dataset nor a readable file or folder."""


@dataclasses.dataclass(frozen=True)
class TrialsOptions(Settings):
    """How to read a lab's trial table (``brainres.read_trials``)."""

    columns: dict = setting({}, Mapping(), "brainres name -> your column name (rt, subject, stimulus_id, response, ...)")
    rt_unit: str = setting("s", Choice("s", "ms"), "unit of the RT column")
    sep: str | None = setting(None, Optional(Text()), "field separator (default: tab for .tsv/.tab, else comma)")
    decimal: str = setting(".", Choice(".", ","), "decimal mark of the RT column")
    min_rt: float | None = setting(None, Optional(Real(low=0)), "exclude faster trials (seconds)")
    max_rt: float | None = setting(None, Optional(Real(low=0)), "exclude slower trials (seconds)")
    allow_duplicates: bool = setting(False, Boolean(), "accept rows that repeat another row exactly (no trial index)")
    allow_unusual_rts: bool = setting(False, Boolean(), "accept a median RT outside 0.05 to 30 s")
    allow_unusable: bool = setting(False, Boolean(), "keep subjects and stimuli whose every trial is a missed response")
    dataset_id: str | None = setting(None, Optional(Text()), "name in reports (default: the file name)")

    def check_together(self) -> None:
        problems = []
        if self.sep is not None and len(self.sep) != 1:
            problems.append(f"sep: expected one character (\"\\t\" for a tab), got {self.sep!r}")
        if self.min_rt is not None and self.max_rt is not None and self.min_rt >= self.max_rt:
            problems.append(f"min_rt ({self.min_rt:g} s) must be below max_rt ({self.max_rt:g} s)")
        if problems:
            raise SettingsError(problems)


@dataclasses.dataclass(frozen=True)
class FolderOptions(Settings):
    """How to read a folder of images (``brainres.read_stimuli``)."""

    categories: str | None = setting("folder", Optional(Text()),
                                     "'folder' (sub-folder names), a table file (stimulus_id or file, category), or none")
    ids: str = setting("stem", Choice("stem", "path"), "stimulus ids: file names without extension, or relative paths")
    channels: int | None = setting(None, Optional(Choice(1, 3)), "1 or 3 (default: 1 if every image is grey)")
    size: int | None = setting(None, Optional(Integer(low=1)), "resize every image to size x size")
    dataset_id: str | None = setting(None, Optional(Text()), "name in reports (default: the folder name)")


@dataclasses.dataclass(frozen=True)
class Source:
    """A resolved data reference."""

    ref: str
    kind: str  # "registered", "folder", "table" or "netcdf"
    path: str = ""
    options: dict = dataclasses.field(default_factory=dict)
    digest: str = ""
    categories_path: str = ""  # an image folder's categories table, absolute (not hashed: contents are)

    def spec(self) -> dict:
        """What the task hashes: the reference, how it is read and its contents (not where it lies)."""
        return {"ref": self.ref, "kind": self.kind, "options": self.options, "digest": self.digest}

    def describe(self) -> str:
        """Words for methods text and provenance."""
        if self.kind == "registered":
            return self.ref
        what = {"folder": "the folder of images", "table": "the trial table", "netcdf": "the file"}[self.kind]
        return f"{what} {self.ref} (SHA-256 {self.digest[:12]})"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_digest(folder: Path, extra: list[Path] = ()) -> str:
    """SHA-256 over the relative paths and contents of a folder's images (and any extra files)."""
    from brainres.data.folders import find_images

    digest = hashlib.sha256()
    for relative in find_images(folder):
        digest.update(f"{relative.as_posix()}\n".encode())
        digest.update(file_digest(folder / relative).encode())
    for path in extra:
        digest.update(f"{path.name}\n".encode())
        digest.update(file_digest(path).encode())
    return digest.hexdigest()


def _is_registered(ref: str) -> bool:
    from brainres.data.registry import dataset_ids

    return ref in dataset_ids()


def resolve_source(ref: str, *, folder, options: dict | None, role: str, where: str) -> Source:
    """Resolve ``ref`` for ``role`` ("stimuli": images; "data": trials, labels or neural data).

    A registered dataset id wins over a path of the same name. Problems raise
    :class:`SourceError` naming ``where`` (the pipeline table and key).
    """
    options = dict(options or {})
    if _is_registered(ref):
        if options:
            raise SourceError(f"{where}: {ref!r} is a registered dataset; its [[dataset]] options do not apply")
        return Source(ref=ref, kind="registered")
    path = (Path(folder) / ref).resolve()
    if not path.exists():
        raise SourceError(f"{where}: {ref!r} is neither a registered dataset (brainres datasets list) nor a file or "
                          f"folder (looked for {path})")
    try:
        if path.is_dir():
            if role != "stimuli":
                raise SourceError(f"{where}: {ref!r} is a folder; here a dataset or a data file is needed "
                                  "(a folder of images goes under 'stimuli' or a model's 'data')")
            checked = FolderOptions.from_dict(options).to_dict()
            extra = []
            if checked["categories"] not in (None, "folder"):
                table = (Path(folder) / checked["categories"]).resolve()
                if not table.is_file():
                    raise SourceError(f"{where}: the categories table {checked['categories']!r} of {ref!r} does "
                                      f"not exist (looked for {table})")
                extra.append(table)
            return Source(ref=ref, kind="folder", path=str(path), options=checked, digest=folder_digest(path, extra),
                          categories_path=str(extra[0]) if extra else "")
        suffix = path.suffix.lower()
        if suffix == ".nc":
            if options:
                raise SourceError(f"{where}: netCDF files are read as they are; drop the options of {ref!r}")
            return Source(ref=ref, kind="netcdf", path=str(path), digest=file_digest(path))
        if suffix in TABLE_SUFFIXES and role == "data":
            return Source(ref=ref, kind="table", path=str(path), options=TrialsOptions.from_dict(options).to_dict(),
                          digest=file_digest(path))
    except SettingsError as err:
        raise SourceError(f"{where} ({ref!r}, options from its [[dataset]]): {err}") from None
    wanted = "a folder of images" if role == "stimuli" else "a trial table (.csv, .tsv) or a netCDF file"
    raise SourceError(f"{where}: {ref!r} is not {wanted}")


def load_stimuli(source: Source) -> xr.Dataset:
    """The stimuli (images and categories) a source stands for."""
    if source.kind == "registered":
        from brainres.data.registry import load_stimuli as load_registered

        return load_registered(source.ref)
    if source.kind == "folder":
        from brainres.data.folders import read_stimuli

        options = dict(source.options)
        if source.categories_path:
            options["categories"] = source.categories_path
        dataset_id = options.pop("dataset_id") or source.ref
        return read_stimuli(source.path, **options, dataset_id=dataset_id, source=source.ref)
    raise SourceError(f"{source.ref!r} holds no images")


def load_data(source: Source) -> xr.Dataset:
    """The human or neural data a source stands for, validated."""
    if source.kind == "registered":
        from brainres.data.registry import load_dataset

        return load_dataset(source.ref)
    if source.kind == "netcdf":
        from brainres.data.io import read_netcdf

        return read_netcdf(source.path)
    if source.kind == "table":
        from brainres.data.trials import read_trials

        options = dict(source.options)
        dataset_id = options.pop("dataset_id") or source.ref
        return read_trials(source.path, **options, dataset_id=dataset_id)
    raise SourceError(f"{source.ref!r} is a folder of images, not human or neural data")
