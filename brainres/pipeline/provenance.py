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
# that changing a comparison does not retrain models while changing a model does.
TASK_SOURCES = {
    "train": ("brainres/models", "brainres/train.py", "brainres/hashing.py", "brainres/data", "datasets"),
    "export": ("brainres/export.py", "brainres/models", "brainres/data", "datasets"),
    "compare": ("brainres/compare.py", "brainres/stats", "comparisons", "brainres/data", "datasets"),
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


def code_fingerprint(kind: str | None = None) -> str:
    """SHA-256 over the Python sources a kind of task depends on (all of brainres when ``kind`` is None).

    Part of every task's hash: changed model, export or statistics code makes the
    cached results of earlier code stale, even when the version number did not
    change (as in an editable install).
    """
    prefixes = TASK_SOURCES.get(kind) if kind else None
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


def dataset_checksums(dataset_ids) -> dict[str, dict]:
    """Per dataset: how many files, and one SHA-256 over their registered ``path sha256`` lines."""
    from brainres.data.registry import get_spec

    record = {}
    for dataset_id in sorted(set(dataset_ids)):
        spec = get_spec(dataset_id)
        files = sorted(list(spec.data_files()) + list(spec.stimulus_files()), key=lambda f: f.path)
        lines = "".join(f"{f.path} {f.sha256}\n" for f in files)
        record[dataset_id] = {
            "files": len(files),
            "sha256_of_file_list": hashlib.sha256(lines.encode()).hexdigest(),
            "source": spec.source,
        }
    return record


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def provenance(pipeline, tasks_record: list[dict]) -> dict:
    """Everything needed to say how a run's numbers were made."""
    datasets = {m.data for m in pipeline.models} | {e.stimuli for e in pipeline.exports} | {
        c.data for c in pipeline.comparisons}
    return {
        "pipeline": pipeline.name,
        "pipeline_file": pipeline.source,
        "configuration": pipeline.raw,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "code_sha256": code_fingerprint(),
        "data": dataset_checksums(datasets),
        "seeds": {m.name: list(m.seeds) for m in pipeline.models},
        "tasks": tasks_record,
        "written": now(),
    }
