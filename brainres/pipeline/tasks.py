"""The tasks of a pipeline run: train (or import) one seed, export it on one stimulus set, compare.

Each task has a hash of its own configuration, of the hashes of the tasks it
depends on and of the sources it runs (brainres's and the user's model
code); its outputs live in a folder named after that hash, and a ``done.json``
written last marks it finished and records the SHA-256 of every output file.
A rerun skips finished tasks whose outputs still match their checksums
(:meth:`Task.check`), reruns the others from nothing, and an unfinished
training resumes from its last checkpoint.

No task knows a family by name: models are reached through the family
registry and the image-model contract.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import brainres
from brainres.hashing import canonical_hash

DONE = "done.json"


@dataclasses.dataclass
class Task:
    """One unit of work of a run.

    ``spec`` is hashed (it decides the outputs); ``context`` is not (where
    things are on this machine, labels for progress output).
    """

    key: str
    kind: str
    spec: dict
    deps: tuple[str, ...]
    context: dict = dataclasses.field(default_factory=dict)
    hash: str = ""
    folder: Path | None = None

    @property
    def done_path(self) -> Path:
        return self.folder / DONE

    def check(self) -> tuple[str, str]:
        """Whether the task is finished: ``("done", "")``, ``("missing", "")`` or ``("changed", what changed)``.

        A finished task's ``done.json`` records the SHA-256 of every output
        file; each is checked here, so a file edited, truncated or removed
        since is found and the task is run again (never trusted on its hash
        alone). A ``done.json`` from before checksums were recorded is
        accepted as it is (``("done", "not verified ...")``).
        """
        try:
            record = json.loads(self.done_path.read_text())
        except FileNotFoundError:
            return "missing", ""
        except (OSError, ValueError) as err:
            return "changed", f"its {DONE} is unreadable ({type(err).__name__})"
        if not isinstance(record, dict) or record.get("hash") != self.hash:
            return "missing", ""
        files = record.get("files")
        if files is None:
            return "done", "finished before output checksums were recorded; not verified"
        for name, digest in sorted(files.items()):
            path = self.folder / name
            if not path.is_file():
                return "changed", f"its output {name} is missing"
            if file_sha256(path) != digest:
                return "changed", f"its output {name} changed since it was written (SHA-256 mismatch)"
        return "done", ""

    def is_done(self) -> bool:
        return self.check()[0] == "done"

    def outputs(self) -> dict[str, str]:
        """SHA-256 of every output file of the task's folder (not ``done.json``, not temporary files)."""
        return output_checksums(self.folder)

    def discard(self) -> None:
        """Remove the outputs of an earlier, damaged attempt, so the task starts from nothing."""
        if self.folder is None or not self.folder.is_dir():
            return
        for path in sorted(self.folder.rglob("*"), reverse=True):
            if path.is_file() or path.is_symlink():
                path.unlink()
            elif path.is_dir():
                path.rmdir()


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def output_checksums(folder) -> dict[str, str]:
    """Relative path -> SHA-256 of every regular file under ``folder`` except ``done.json`` and temporaries."""
    from brainres.data.io import is_temporary

    folder = Path(folder)
    return {path.relative_to(folder).as_posix(): file_sha256(path)
            for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.is_symlink() and path.name != DONE and not is_temporary(path.name)}


def _family_sources(family: str | None) -> tuple[str, ...]:
    """Source prefixes of one family: its folder plus the registry and declaration."""
    if family is None:
        return ()
    from brainres.families import INDEX

    return (f"brainres/families/{INDEX[family].partition(':')[0]}", "brainres/families/__init__.py",
            "brainres/families/base.py")


def build_tasks(checked, run_dir) -> list:
    """All tasks of a checked pipeline in dependency order, with hashes and folders."""
    from brainres.compare import get_comparison
    from brainres.pipeline.provenance import TASK_SOURCES, code_fingerprint

    pipeline = checked.pipeline
    run_dir = Path(run_dir)
    tasks: dict[str, Task] = {}
    fingerprints: dict[tuple, str] = {}

    def add(task: Task, subfolder: str, family: str | None = None):
        prefixes = TASK_SOURCES[task.kind] + _family_sources(family)
        if prefixes not in fingerprints:
            fingerprints[prefixes] = code_fingerprint(prefixes)
        dep_hashes = [tasks[d].hash for d in task.deps]
        task.hash = canonical_hash({"kind": task.kind, "spec": task.spec, "deps": dep_hashes,
                                    "brainres": brainres.__version__, "code": fingerprints[prefixes]})
        task.folder = run_dir / subfolder / f"{task.key.split('/', 1)[1].replace('/', '__')}-{task.hash[:12]}"
        tasks[task.key] = task

    for model in pipeline.models:
        entry = checked.model(model.name)
        if entry.variants:
            _add_task_family_tasks(add, model, entry)
            continue
        if model.precomputed:
            add(Task(f"measures/{model.name}", "measures", {"measures": entry.measures.spec()}, (),
                     context={"path": entry.measures.path, "name": model.name}), "exports")
            continue
        device = checked.device or model.device
        for index, seed in enumerate(model.seeds):
            spec = {"model": entry.record, "code": entry.code, "seed": seed, "device": device}
            context = {"location": entry.location, "label": f"{model.name} seed {seed}"}
            if entry.checkpoints:
                path, digest = entry.checkpoints[index]
                spec["weights_sha256"] = digest
                context["weights"] = path
            else:
                spec |= {"data": entry.data.spec(), "training": model.training}
                kept = sorted({e for x in pipeline.exports if x.model == model.name for e in x.epochs})
                if kept:  # weights kept after these epochs, for exports across training
                    spec["keep_epochs"] = kept
                context["data"] = entry.data
            add(Task(f"train/{model.name}/seed-{seed}", "train", spec, (), context=context), "models",
                model.family)
    for export in pipeline.exports:
        # one task per seed, so seeds export in parallel; comparisons combine them lazily
        model = pipeline.model(export.model)
        source = checked.stimuli[(export.model, export.stimuli)]
        for epoch in (*export.epochs, None):  # None: the trained model (its last epoch)
            for seed in model.seeds:
                spec = {"stimuli": source.spec(), "occlusion": list(export.occlusion), "latents": export.latents,
                        "batch_size": export.batch_size, "unknown_classes": export.unknown_classes,
                        "entropy_threshold": export.entropy_threshold, "device": checked.device or model.device}
                if epoch is not None:
                    spec["epoch"] = epoch
                add(Task(export_key(export.model, export.stimuli, seed, epoch), "export", spec,
                         (f"train/{export.model}/seed-{seed}",), context={"stimuli": source}), "exports",
                    model.family)
    for index, comparison in enumerate(pipeline.comparisons):
        model = pipeline.model(comparison.model)
        entry = checked.model(model.name)
        if entry.variants:
            deps = tuple(f"measures/{model.name}/{variant.label}" for variant, _ in entry.variants)
        elif model.precomputed:
            deps = (f"measures/{model.name}",)
        else:
            deps = tuple(export_key(comparison.model, comparison.stimuli, seed) for seed in model.seeds)
        epochs = {}
        if get_comparison(comparison.kind).across_training:  # every kept epoch and the last, each over its seeds
            export = next(x for x in pipeline.exports if (x.model, x.stimuli) == (comparison.model, comparison.stimuli))
            epochs = {f"epoch {epoch}": [export_key(comparison.model, comparison.stimuli, seed, epoch)
                                         for seed in model.seeds] for epoch in export.epochs}
            epochs[f"epoch {_last_epoch(model)}"] = list(deps)
            deps = tuple(key for keys in epochs.values() for key in keys)
        source = checked.data[index]
        spec = {"kind": comparison.kind, "model": comparison.model, "stimuli": comparison.stimuli,
                "data": None if source is None else source.spec(), "options": comparison.options}
        key = f"compare/{comparison.kind}/{comparison.model}/{comparison.stimuli or 'measures'}/{comparison.data or 'self'}"
        repeat = sum(t.startswith(key) for t in tasks)  # the same comparison with other options
        add(Task(key + (f"/{repeat + 1}" if repeat else ""), "compare", spec, deps,
                 context={"data": source, "variants": [v.label for v, _ in entry.variants], "epochs": epochs}),
            "results")
    _add_model_comparisons(add, pipeline, checked, tasks)
    return list(tasks.values())


def export_key(model: str, stimuli: str, seed: int, epoch: int | None = None) -> str:
    """The key of one seed's export; ``epoch``: of the weights kept after that training epoch."""
    return f"export/{model}/{stimuli}/" + ("" if epoch is None else f"epoch-{epoch}/") + f"seed-{seed}"


def _last_epoch(model) -> int:
    from brainres.train import TrainConfig

    return TrainConfig.from_dict(model.training).epochs


# Options of a time-vs-rt comparison that the comparison of its models with each other shares.
_SHARED_OPTIONS = ("occlusion", "method", "n_resamples", "reliability_resamples", "n_splits", "seed", "ci_level")


def _add_model_comparisons(add, pipeline, checked, tasks) -> None:
    """Where two or more models are compared with the same human RTs, one paired comparison of all of them."""
    groups: dict = {}
    for index, comparison in enumerate(pipeline.comparisons):
        if comparison.kind == "time-vs-rt":
            shared = {k: comparison.options[k] for k in _SHARED_OPTIONS if k in comparison.options}
            key = (comparison.data, comparison.stimuli or "", json.dumps(shared, sort_keys=True))
            groups.setdefault(key, []).append((index, comparison, shared))
    for (data, stimuli, _), members in groups.items():
        models, readouts, deps = {}, {}, []
        for index, comparison, shared in members:
            if comparison.model in models:
                continue  # the first readout of each model
            task = next(t for t in tasks.values() if t.kind == "compare" and t.spec["model"] == comparison.model
                        and t.spec["data"] == (None if checked.data[index] is None else checked.data[index].spec())
                        and t.spec["stimuli"] == comparison.stimuli)
            models[comparison.model] = list(task.deps)
            readouts[comparison.model] = comparison.options.get("readout", "expected_halting_step")
            deps += [d for d in task.deps if d not in deps]
        if len(models) < 2:
            continue
        source = checked.data[members[0][0]]
        spec = {"kind": "model-comparison", "models": sorted(models), "stimuli": stimuli or None,
                "data": source.spec(), "options": {**members[0][2], "readouts": readouts}}
        add(Task(f"compare/model-comparison/{'+'.join(sorted(models))}/{stimuli or 'measures'}/{data}", "compare",
                 spec, tuple(deps), context={"data": source, "models": models}), "results")


def _add_task_family_tasks(add, model, entry) -> None:
    """A task family's model: train every variant x seed (after its parent), measure every variant."""
    for variant, config in entry.variants:
        for seed in model.seeds:
            parent = (f"train/{model.name}/{variant.continue_from}/seed-{seed}",) if variant.continue_from else ()
            spec = {"family": model.family, "config": config.to_dict(), "seed": seed, "variant": variant.label}
            add(Task(f"train/{model.name}/{variant.label}/seed-{seed}", "train", spec, parent,
                     context={"label": f"{model.name} {variant.label} seed {seed}"}), "models", model.family)
        spec = {"family": model.family, "config": config.to_dict(), "variant": variant.label, "tags": variant.tags}
        add(Task(f"measures/{model.name}/{variant.label}", "measures", spec,
                 tuple(f"train/{model.name}/{variant.label}/seed-{seed}" for seed in model.seeds)), "exports",
            model.family)


# ----------------------------------------------------------------- runners


def _task_family_config(spec: dict):
    from brainres.families import get_family

    family = get_family(spec["family"])
    return family, family.config.from_dict(spec["config"])


def run_task_family_train(task: Task, tasks: dict, progress: bool) -> dict:
    """Train one seed of one variant of a task family (continuing from its parent variant's model, if any)."""
    family, config = _task_family_config(task.spec)
    parent = None
    if task.deps:
        parent_task = tasks[task.deps[0]]
        parent = family.load(_task_family_config(parent_task.spec)[1], parent_task.folder)
    run = family.train(config, task.spec["seed"], run_dir=task.folder, parent=parent, progress=progress,
                       label=task.context["label"])
    last = run.log.iloc[-1].to_dict() if len(run.log) else {}
    return {name: value for name, value in last.items() if isinstance(value, (int, float))}


def run_train(task: Task, tasks: dict, progress: bool) -> dict:
    """Train one seed of an image model, or import its weights."""
    if "config" in task.spec:
        return run_task_family_train(task, tasks, progress)
    from brainres.families import get_family
    from brainres.models.contract import seeded
    from brainres.train import TrainConfig, import_weights, train_model

    spec, context = task.spec, task.context
    record = spec["model"]
    family = get_family(record["family"])

    def build():
        return family.build(record, seed=spec["seed"], location=context["location"])

    if "weights" in context:
        with seeded(spec["seed"]):
            model = build()
        import_weights(task.folder, model, record=record, location=context["location"], seed=spec["seed"],
                       device=spec["device"], weights=context["weights"], weights_sha256=spec["weights_sha256"])
        return {"weights": context["weights"]}

    from brainres.models.inputs import class_indices, prepare_images
    from brainres.pipeline.sources import load_stimuli

    import torch

    stimuli = load_stimuli(context["data"])
    images = prepare_images(stimuli["image"].values, in_channels=record["in_channels"], image_size=record["image_size"])
    labels = torch.from_numpy(class_indices(stimuli, record["classes"]))
    config = TrainConfig.from_dict({**spec["training"], "seed": spec["seed"], "device": spec["device"]})
    result = train_model(build, images, labels, config, n_classes=len(record["classes"]),
                         record={**record, "data": spec["data"]}, location=context["location"], run_dir=task.folder,
                         progress=progress, label=context["label"], keep_epochs=tuple(spec.get("keep_epochs", ())))
    last = result.log.iloc[-1].to_dict()
    return {"held_out_accuracy": last.get("held_out_accuracy"), "held_out_mean_steps": last.get("held_out_mean_steps"),
            "halting": result.has_halting}


def run_export(task: Task, tasks: dict, progress: bool) -> dict:
    """Export one trained seed on one stimulus set."""
    from brainres.export import export_models
    from brainres.families import get_family
    from brainres.pipeline.sources import load_stimuli
    from brainres.train import load_trained, read_run_config

    trained = load_trained(tasks[task.deps[0]].folder, device=task.spec["device"], epoch=task.spec.get("epoch"))
    stored = read_run_config(trained.run_dir)
    record, weights = trained.record, stored.get("weights")
    epoch = task.spec.get("epoch", stored["training"]["epochs"] if not weights else None)
    path = export_models(
        {trained.seed: trained.model}, load_stimuli(task.context["stimuli"]), task.folder / "measures.nc",
        classes=record["classes"], in_channels=record["in_channels"], image_size=record["image_size"],
        # one record for every seed of the model, so the seeds' files combine into one export
        record={**record, "training": None if weights else {k: v for k, v in stored["training"].items() if k != "seed"},
                "weights": "trained elsewhere, loaded from checkpoints" if weights else None},
        training_data=f"weights from {weights['file']}" if weights else record["data"]["ref"],
        pressures=get_family(record["family"]).pressures(record), occlusion_levels=task.spec["occlusion"],
        latents=task.spec["latents"], batch_size=task.spec["batch_size"],
        unknown_classes=task.spec["unknown_classes"], entropy_threshold=task.spec["entropy_threshold"],
        device=task.spec["device"], progress=progress, training_epoch=epoch,
    )
    return {"file": str(path)}


def run_measures(task: Task, tasks: dict, progress: bool) -> dict:
    """A task family's variant measured over its seeds, or a precomputed measures file read once, validated."""
    from brainres.data.io import write_netcdf
    from brainres.data.measures import read_measures

    if "config" in task.spec:
        family, config = _task_family_config(task.spec)
        measures = family.measure(config, [family.load(config, tasks[dep].folder) for dep in task.deps])
        measures.attrs.update(variant=task.spec["variant"], variant_tags=task.spec["tags"])
    else:
        measures = read_measures(task.context["path"], model_name=task.context["name"])
    path = write_netcdf(measures, task.folder / "measures.nc", validate_kind="model_measures")
    return {"file": str(path), "seeds": [int(s) for s in measures["seed"].values]}


def run_compare(task: Task, tasks: dict, progress: bool) -> dict:
    from brainres.compare import compare
    from brainres.data.io import open_netcdf_many
    from brainres.pipeline.sources import load_data
    from brainres.pipeline.store import save_result

    exports = [tasks[d].folder / "measures.nc" for d in task.deps]
    data = None if task.context["data"] is None else load_data(task.context["data"])
    if task.context.get("models"):  # several models, each from its own exports
        from brainres.compare import compare_models
        from brainres.data.io import open_netcdf_many

        opened = {name: open_netcdf_many([tasks[d].folder / "measures.nc" for d in deps], concat_dim="seed")
                  for name, deps in task.context["models"].items()}
        try:
            result = compare_models(task.spec["kind"], {name: ds for name, ds in opened.items()}, data,
                                    **task.spec["options"])
        finally:
            for ds in opened.values():
                ds.close()
        result.inputs.update(data=task.spec["data"]["ref"], stimuli=task.spec["stimuli"])
        save_result(result, task.folder)
        return {"estimates": len(result.results)}
    if task.context.get("epochs"):  # the model across training: one variant per kept epoch, each over its seeds
        from brainres.data.variants import combine_variants

        measures = combine_variants({label: _seeds_at_epoch([tasks[k].folder / "measures.nc" for k in keys])
                                     for label, keys in task.context["epochs"].items()})
        result = compare(task.spec["kind"], measures, data, **task.spec["options"])
    elif task.context.get("variants"):
        from brainres.data.io import read_netcdf
        from brainres.data.variants import combine_variants

        measures = combine_variants({label: read_netcdf(path) for label, path in
                                     zip(task.context["variants"], exports)})
        result = compare(task.spec["kind"], measures, data, **task.spec["options"])
    else:
        with open_netcdf_many(exports, concat_dim="seed") as measures:
            result = compare(task.spec["kind"], measures, data, **task.spec["options"])
    result.inputs.update(export_config_hash=measures.attrs["config_hash"],
                         data=None if task.spec["data"] is None else task.spec["data"]["ref"],
                         stimuli=task.spec["stimuli"], model=task.spec["model"])
    save_result(result, task.folder)
    return {"estimates": len(result.results)}


def _seeds_at_epoch(paths):
    """One epoch's exports of every seed, loaded, tagged with the epoch (a coordinate once combined)."""
    from brainres.data.io import open_netcdf_many

    with open_netcdf_many(paths, concat_dim="seed") as measures:
        loaded = measures.load()
    loaded.attrs["variant_tags"] = {"training_epoch": int(loaded.attrs["training_epoch"])}
    return loaded


RUNNERS = {"train": run_train, "export": run_export, "measures": run_measures, "compare": run_compare}
