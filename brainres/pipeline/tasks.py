"""The tasks of a pipeline run: train one seed, export one model on one stimulus set, one comparison.

Each task has a hash of its own configuration and of the hashes of the tasks
it depends on; its outputs live in a folder named after that hash, and a
``done.json`` written last marks it finished. A rerun skips finished tasks,
and an unfinished training resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

import brainres
from brainres.data.io import atomic_write_text
from brainres.hashing import canonical_hash

DONE = "done.json"


@dataclasses.dataclass
class Task:
    """One unit of work of a run."""

    key: str
    kind: str
    spec: dict
    deps: tuple[str, ...]
    hash: str = ""
    folder: Path | None = None

    @property
    def done_path(self) -> Path:
        return self.folder / DONE

    def is_done(self) -> bool:
        if not self.done_path.exists():
            return False
        return json.loads(self.done_path.read_text()).get("hash") == self.hash


def build_tasks(pipeline, run_dir) -> list[Task]:
    """All tasks of ``pipeline`` in dependency order, with hashes and folders."""
    from brainres.pipeline.provenance import code_fingerprint

    run_dir = Path(run_dir)
    tasks: dict[str, Task] = {}
    code = {kind: code_fingerprint(kind) for kind in RUNNERS}

    def add(task: Task, subfolder: str):
        dep_hashes = [tasks[d].hash for d in task.deps]
        task.hash = canonical_hash({"kind": task.kind, "spec": task.spec, "deps": dep_hashes,
                                    "brainres": brainres.__version__, "code": code[task.kind]})
        task.folder = run_dir / subfolder / f"{task.key.split('/', 1)[1].replace('/', '__')}-{task.hash[:12]}"
        tasks[task.key] = task

    for model in pipeline.models:
        for seed in model.seeds:
            spec = {"family": model.family, "data": model.data, "image_size": model.image_size,
                    "lattice": model.lattice, "training": model.training, "seed": seed}
            add(Task(f"train/{model.name}/seed-{seed}", "train", spec, ()), "models")
    for export in pipeline.exports:
        # one task per seed, so seeds export in parallel; comparisons combine them lazily
        for seed in pipeline.model(export.model).seeds:
            spec = {"model": export.model, "stimuli": export.stimuli, "occlusion": list(export.occlusion),
                    "latents": export.latents, "batch_size": export.batch_size,
                    "unknown_classes": export.unknown_classes, "seed": seed}
            add(Task(f"export/{export.model}/{export.stimuli}/seed-{seed}", "export", spec,
                     (f"train/{export.model}/seed-{seed}",)), "exports")
    for comparison in pipeline.comparisons:
        deps = tuple(f"export/{comparison.model}/{comparison.stimuli}/seed-{seed}"
                     for seed in pipeline.model(comparison.model).seeds)
        spec = {"kind": comparison.kind, "model": comparison.model, "stimuli": comparison.stimuli,
                "data": comparison.data, "options": comparison.options}
        add(Task(f"compare/{comparison.kind}/{comparison.model}/{comparison.stimuli}/{comparison.data}",
                 "compare", spec, deps), "results")
    return list(tasks.values())


# ----------------------------------------------------------------- runners


def run_train(task: Task, tasks: dict, progress: bool) -> dict:
    from brainres.data.registry import load_stimuli
    from brainres.export import prepare_images
    from brainres.models.lattice import LatticeConfig
    from brainres.train import TrainConfig, train_lattice

    spec = task.spec
    stimuli = load_stimuli(spec["data"])
    classes = [str(c) for c in stimuli["label"].attrs.get("classes", np.unique(stimuli["category"].values))]
    lattice = {"in_channels": int(stimuli.sizes["channel"]), "n_classes": len(classes)} | spec["lattice"]
    images = prepare_images(stimuli["image"].values, in_channels=lattice["in_channels"], image_size=spec["image_size"])
    labels = np.array([classes.index(str(c)) for c in stimuli["category"].values])
    config = TrainConfig.from_dict({"model": lattice, "seed": spec["seed"], **spec["training"]})
    import torch

    result = train_lattice(images, torch.from_numpy(labels), config, run_dir=task.folder, progress=progress)
    atomic_write_text(task.folder / "data.json", json.dumps(
        {"data": spec["data"], "classes": classes, "image_size": spec["image_size"]}, indent=2))
    last = result.log.iloc[-1].to_dict()
    return {"held_out_accuracy": last.get("held_out_accuracy"), "held_out_mean_steps": last.get("held_out_mean_steps")}


def run_export(task: Task, tasks: dict, progress: bool) -> dict:
    from brainres.data.registry import load_stimuli
    from brainres.export import export_lattice
    from brainres.train import load_trained

    train = tasks[task.deps[0]]
    models = {train.spec["seed"]: load_trained(train.folder)}
    data = json.loads((train.folder / "data.json").read_text())
    training = {k: v for k, v in train.spec.items() if k != "seed"}
    path = export_lattice(
        models, load_stimuli(task.spec["stimuli"]), task.folder / "measures.nc", classes=data["classes"],
        training_data=f"{data['data']} (labels: category)", training_config=training,
        image_size=data["image_size"], occlusion_levels=task.spec["occlusion"], latents=task.spec["latents"],
        batch_size=task.spec["batch_size"], unknown_classes=task.spec["unknown_classes"], progress=progress,
    )
    return {"file": str(path)}


def run_compare(task: Task, tasks: dict, progress: bool) -> dict:
    from brainres.compare import compare
    from brainres.data.io import open_netcdf_many
    from brainres.data.registry import load_dataset
    from brainres.pipeline.store import save_result

    exports = [tasks[d].folder / "measures.nc" for d in task.deps]
    data = load_dataset(task.spec["data"])
    with open_netcdf_many(exports, concat_dim="seed") as measures:
        result = compare(task.spec["kind"], measures, data, **task.spec["options"])
    result.inputs.update(export_config_hash=measures.attrs["config_hash"], data=task.spec["data"],
                         stimuli=task.spec["stimuli"], model=task.spec["model"])
    save_result(result, task.folder)
    return {"estimates": len(result.results)}


RUNNERS = {"train": run_train, "export": run_export, "compare": run_compare}
