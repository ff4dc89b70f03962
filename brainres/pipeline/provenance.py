"""The provenance record of a run: software, configuration, data checksums, seeds."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import sys
from datetime import datetime, timezone

PACKAGES = ("brainres", "numpy", "scipy", "pandas", "xarray", "torch", "statsmodels", "pingouin", "h5netcdf",
            "matplotlib", "pooch")


# The sources each kind of task depends on (its upstream tasks' hashes cover the rest), so
# that changing a comparison does not retrain models while changing a model does. Train and
# export tasks add their family's folder (brainres.pipeline.tasks).
_SHARED = ("brainres/models", "brainres/data", "brainres/hashing.py", "brainres/settings.py", "brainres/errors.py")
TASK_SOURCES = {
    "train": (*_SHARED, "brainres/train.py", "datasets"),
    "export": (*_SHARED, "brainres/export.py", "brainres/train.py", "datasets"),
    "measures": _SHARED,
    "compare": ("brainres/compare.py", "brainres/stats", "comparisons", "brainres/data", "datasets",
                "brainres/errors.py"),
}


def _source_files():
    """(label, path) of every Python source of brainres and its plug-in folders."""
    import brainres
    import brainres.comparisons
    import brainres.datasets
    from pathlib import Path

    for package, label in ((brainres, "brainres"), (brainres.datasets, "datasets"),
                           (brainres.comparisons, "comparisons")):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if label == "brainres" and relative.split("/")[0] in ("datasets", "comparisons"):
                continue  # an installed layout may nest them; they are hashed under their own label
            yield f"{label}/{relative}", path


def code_fingerprint(prefixes: tuple[str, ...] | None = None) -> str:
    """SHA-256 over the Python sources under ``prefixes`` (all of brainres when None).

    Part of every task's hash: changed model, export or statistics code makes the
    cached results of earlier code stale, even when the version number did not
    change (as in an editable install).
    """
    digest = hashlib.sha256()
    for label, path in _source_files():
        if prefixes and not any(label == p or label.startswith(p.rstrip("/") + "/") for p in prefixes):
            continue
        digest.update(f"{label}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def dataset_checksums(sources) -> dict[str, dict]:
    """Per data reference: for a registered dataset, its files and one SHA-256 over their registered
    ``path sha256`` lines; for a user's file or folder, the SHA-256 of its contents."""
    from brainres.data.registry import get_spec

    record = {}
    for source in sorted(sources, key=lambda s: s.ref):
        if source.kind != "registered":
            record[source.ref] = {"kind": source.kind, "sha256": source.digest}
            continue
        spec = get_spec(source.ref)
        files = sorted(list(spec.data_files()) + list(spec.stimulus_files()), key=lambda f: f.path)
        lines = "".join(f"{f.path} {f.sha256}\n" for f in files)
        record[source.ref] = {
            "files": len(files),
            "sha256_of_file_list": hashlib.sha256(lines.encode()).hexdigest(),
            "source": spec.source,
        }
    return record


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def provenance(checked, tasks, records: list[dict]) -> dict:
    """Everything needed to say how a run's numbers were made."""
    pipeline = checked.pipeline
    sources = {s.ref: s for s in [*checked.stimuli.values(), *checked.data] if s is not None}
    for model in checked.models.values():
        if model.data is not None:
            sources[model.data.ref] = model.data
    folders = {t.key: t.folder.name for t in tasks}
    return {
        "pipeline": pipeline.name,
        "pipeline_file": pipeline.source,
        "pipeline_folder": pipeline.folder,
        "configuration": pipeline.raw,
        "device": checked.device,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "code_sha256": code_fingerprint(),
        "data": dataset_checksums(sources.values()),
        "models": {name: {"seeds": list(m.seeds), "record": m.record, "user_code_sha256": m.code or None,
                          "checkpoints": [{"file": f, "sha256": d} for f, d in m.checkpoints] or None,
                          "measures": m.measures.spec() if m.measures else None}
                   for name, m in checked.models.items()},
        "seeds": {name: list(m.seeds) for name, m in checked.models.items()},
        "tasks": [dict(record, folder=f"{t.folder.parent.name}/{folders[t.key]}", kind=t.kind)
                  for record, t in zip(records, tasks)],
        "written": now(),
    }
