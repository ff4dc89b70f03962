"""Getting dataset files: from a local mirror or from their public source.

A file is described by a :class:`RemoteFile`: its path relative to the
dataset's folder (the same path in the mirror and, below the source's base
address, upstream), its SHA-256 and its download address. :func:`fetch`
returns local paths, checking every file's SHA-256 whichever way it came.

- With ``BRAINRES_DATA`` set and the file present there, the mirror copy is
  used in place (never copied), after its checksum is verified.
- Otherwise pooch downloads it into the cache (``BRAINRES_CACHE``, default the
  platform cache folder), verifying the checksum before the file is moved into
  place, so a bad download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from brainres.errors import ChecksumError, DataFileError

MIRROR_ENV = "BRAINRES_DATA"
CACHE_ENV = "BRAINRES_CACHE"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset.

    Parameters
    ----------
    path : str
        Path relative to the dataset folder, e.g. ``"raw-data/edge/edge_subject-01_session_1.csv"``.
    sha256 : str
        Hex SHA-256 digest of the file's bytes.
    url : str or None
        Public download address; ``None`` for files only a mirror can provide.
    """

    path: str
    sha256: str
    url: str | None


def mirror_root() -> Path | None:
    """The local mirror named by ``BRAINRES_DATA``, or None."""
    value = os.environ.get(MIRROR_ENV)
    return Path(value).expanduser() if value else None


def cache_root() -> Path:
    """Folder for downloaded files."""
    value = os.environ.get(CACHE_ENV)
    if value:
        return Path(value).expanduser()
    import pooch

    return Path(pooch.os_cache("brainres"))


_VERIFIED: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) within a process."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _VERIFIED[key] = digest.hexdigest()
    return _VERIFIED[key]


def locate(folder: str, file: RemoteFile) -> Path | None:
    """Where ``file`` already is, verified: mirror first, then cache; else None."""
    for root in (mirror_root(), cache_root()):
        if root is None:
            continue
        candidate = root / folder / file.path
        if candidate.is_file():
            actual = sha256_of(candidate)
            if actual != file.sha256:
                raise ChecksumError(candidate, file.sha256, actual)
            return candidate
    return None


def fetch(folder: str, files: list[RemoteFile], progress: bool = False) -> dict[str, Path]:
    """Local, checksum-verified paths of ``files`` (dataset folder ``folder``).

    Raises
    ------
    ChecksumError
        A mirror, cached or downloaded file has the wrong SHA-256 (a bad
        download is deleted by pooch; a mirror is never modified).
    DataFileError
        A file is in no mirror and cannot be downloaded.
    """
    paths: dict[str, Path] = {}
    missing: list[RemoteFile] = []
    for file in files:
        found = locate(folder, file)
        if found is None:
            missing.append(file)
        else:
            paths[file.path] = found
    for file in missing:
        paths[file.path] = _download(folder, file, progress)
    return paths


def _download(folder: str, file: RemoteFile, progress: bool) -> Path:
    import pooch

    target = cache_root() / folder / file.path
    mirror = mirror_root()
    where = f" (not in the mirror {mirror / folder})" if mirror else f" ({MIRROR_ENV} is not set)"
    if file.url is None:
        raise DataFileError(target, f"this file has no public download address{where}; "
                            f"put it in a mirror and set {MIRROR_ENV}")
    try:
        local = pooch.retrieve(
            url=file.url,
            known_hash=f"sha256:{file.sha256}",
            fname=target.name,
            path=target.parent,
            progressbar=progress,
        )
    except ValueError as err:  # pooch's checksum failure; it has removed the download
        raise ChecksumError(file.url, file.sha256, _hash_from_message(str(err))) from None
    except Exception as err:  # network errors come in many types; name the file
        raise DataFileError(file.url, f"download failed{where}: {err}") from None
    return Path(local)


def _hash_from_message(message: str) -> str:
    words = [w.strip("().'\"") for w in message.split()]
    hexes = [w for w in words if len(w) == 64 and all(c in "0123456789abcdef" for c in w)]
    return hexes[-1] if hexes else "unknown"


def registry_files(registry_path, url_for: Callable[[str], str | None]) -> list[RemoteFile]:
    """Read a ``path sha256`` registry file (plain or .gz) into RemoteFiles.

    ``url_for`` maps a relative path to its public download address.
    """
    import gzip

    registry_path = Path(registry_path)
    opener = gzip.open if registry_path.suffix == ".gz" else open
    with opener(registry_path, "rt") as handle:
        rows = [line.split() for line in handle if line.strip() and not line.startswith("#")]
    return [RemoteFile(path, digest, url_for(path)) for path, digest in rows]
