"""Checking a pipeline whole, before any task runs: data resolved, every model built once, comparisons fitted.

:func:`check_pipeline` turns a parsed :class:`~brainres.pipeline.config.Pipeline`
into a :class:`CheckedPipeline`: every data reference resolved (registered
dataset or user's file, with a digest of its contents), every model's classes,
input channels and family settings settled and recorded, every model built
and run once on two blank images (so a factory that fails, logits of the
wrong width or a missing halting head show up in seconds, not after
training), checkpoints loaded, precomputed measures read, and every
comparison's options checked against the plug-in's parameters and the
variables its model will export. All problems are reported together.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import torch

from brainres.errors import BrainresError, ProblemsError
from brainres.pipeline.config import ModelSpec, Pipeline, PipelineError
from brainres.pipeline.sources import Source, file_digest, load_stimuli, resolve_source
from brainres.settings import SettingsError

# Variables every image-model export has, whatever the model (see brainres.export).
ALWAYS_EXPORTED = ("entropy", "predicted_class", "correct", "entropy_threshold_step", "uncertainty_auc",
                   "halted_class", "halted_correct", "accuracy", "target_class", "n_parameters")
HALTING_EXPORTED = ("halting_probability", "expected_halting_step", "median_halting_step")


@dataclasses.dataclass(frozen=True)
class CheckedModel:
    """A model with everything its tasks need, settled once."""

    spec: ModelSpec
    where: str
    record: dict | None = None       # family, settings, classes, in_channels, image_size (hashed)
    location: dict = dataclasses.field(default_factory=dict)  # where user code lives (not hashed)
    code: str = ""                   # digest of the user code behind the model
    data: Source | None = None       # training images
    checkpoints: tuple = ()          # (absolute path, sha256) per seed
    measures: Source | None = None   # precomputed measures file
    variables: frozenset = frozenset()  # what its exports will hold
    seeds: tuple = ()
    variants: tuple = ()             # task families: (Variant, config) in the sweep's order


@dataclasses.dataclass(frozen=True)
class CheckedPipeline:
    pipeline: Pipeline
    models: dict
    stimuli: dict        # (model name, stimuli ref) -> Source
    data: tuple          # Source per comparison
    device: str | None = None

    def model(self, name: str) -> CheckedModel:
        return self.models[name]


class _Problems:
    def __init__(self):
        self.items = []

    def add(self, where: str, err) -> None:
        if isinstance(err, ProblemsError) and not err.where and len(err.problems) > 1:
            for problem in err.problems:  # one line per problem, not a list inside a list
                self.add(where, problem)
            return
        text = str(err)
        self.items.append(text if text.startswith(where) else f"{where}: {text}")


def _size_of(stimuli) -> int:
    return int(max(stimuli.sizes["y"], stimuli.sizes["x"]))


class _Stimuli:
    """Loads each stimulus source once per check (classes, channels and sizes come from them)."""

    def __init__(self):
        self.cache = {}

    def __call__(self, source: Source):
        key = (source.kind, source.path or source.ref)
        if key not in self.cache:
            self.cache[key] = load_stimuli(source)
        return self.cache[key]


def _classes(spec: ModelSpec, pipeline: Pipeline, stimuli: _Stimuli, training) -> list[str]:
    from brainres.models.inputs import stimulus_classes

    if isinstance(spec.classes, tuple):
        return list(spec.classes)
    if isinstance(spec.classes, str):
        source = resolve_source(spec.classes, folder=pipeline.folder, options=pipeline.dataset_options(spec.classes),
                                role="stimuli", where="classes")
        return stimulus_classes(stimuli(source))
    return stimulus_classes(training)


def _probe(model: torch.nn.Module, in_channels: int, size: int, n_classes: int) -> set:
    """Run a fresh model on two blank images; return the time readouts its exports will have."""
    from brainres.models.contract import run_model

    model.eval()
    with torch.no_grad():
        out = run_model(model, torch.full((2, in_channels, size, size), 0.5), n_classes=n_classes, latents=True)
    variables = set(ALWAYS_EXPORTED)
    if out.halting_probability is not None:
        variables |= set(HALTING_EXPORTED) | {"mean_expected_halting_step"}
    else:
        variables.add("mean_entropy_threshold_step")
    if out.latents:
        variables.add("latent")
        variables |= {f"latent:{name}" for name in out.latents}  # the layers a comparison may name
    return variables


def _check_checkpoint(path: Path, model: torch.nn.Module) -> None:
    from brainres.data.weights import load_weights

    load_weights(path, model)


def _check_image_model(spec: ModelSpec, where: str, pipeline: Pipeline, stimuli: _Stimuli, device: str | None):
    from brainres.families import get_family
    from brainres.models.contract import seeded
    from brainres.train import TrainConfig

    family = get_family(spec.family)
    data, training_stimuli = None, None
    if spec.data is not None:
        data = resolve_source(spec.data, folder=pipeline.folder, options=pipeline.dataset_options(spec.data),
                              role="stimuli", where=f"{where}.data")
        training_stimuli = stimuli(data)
        if "category" not in training_stimuli or len(set(training_stimuli["category"].values.astype(str))) < 2:
            raise PipelineError(f"{where}.data: {spec.data!r} needs at least two categories to train a classifier")
    classes = _classes(spec, pipeline, stimuli, training_stimuli)
    table_channels = spec.settings.get("in_channels") if family.settings_table else None
    in_channels = spec.in_channels or table_channels or \
        (int(training_stimuli.sizes["channel"]) if training_stimuli is not None else None)
    if in_channels is None:
        raise PipelineError(f"{where}.in_channels: needed for a model brought as checkpoints (1 grey, 3 colour)")
    table = f"{where} [model.{family.settings_table}]" if family.settings_table else where
    found = []  # the family's settings and the training settings are both checked, and reported together
    device = device or spec.device
    if spec.data is not None:
        try:
            TrainConfig.from_dict({**spec.training, "seed": spec.seeds[0], "device": device})
        except SettingsError as err:
            found.append(f"{where} [model.training]: {err}")
    try:
        settings, location = family.settings(spec.settings, in_channels=in_channels, n_classes=len(classes),
                                             folder=pipeline.folder)
    except SettingsError as err:
        found.insert(0, f"{table}: {err}")
    except BrainresError as err:
        found.insert(0, f"{where}: {err}")
    if found:
        raise PipelineError(found)
    record = {"family": spec.family, "settings": settings, "classes": classes, "in_channels": int(in_channels),
              "image_size": spec.image_size}
    files = family.code_files(settings, location)
    code = hashlib.sha256("".join(f"{f.name}:{file_digest(f)}\n" for f in files).encode()).hexdigest() if files else ""
    size = spec.image_size or (_size_of(training_stimuli) if training_stimuli is not None else None)
    if size is None:  # weights brought without an image size: the images it will be shown decide
        export = next((e for e in pipeline.exports if e.model == spec.name), None)
        size = 32 if export is None else _size_of(stimuli(resolve_source(
            export.stimuli, folder=pipeline.folder, options=pipeline.dataset_options(export.stimuli),
            role="stimuli", where=f"{where} export stimuli")))
    try:
        with seeded(spec.seeds[0]):
            model = family.build(record, seed=spec.seeds[0], location=location)
        variables = _probe(model, in_channels, size, len(classes))
    except BrainresError as err:
        raise PipelineError(f"{where}: {err}") from None
    except Exception as err:  # the user's code: say where it broke
        raise PipelineError(f"{where}: building the model and running it on two blank {in_channels}-channel "
                            f"{size} x {size} images failed: {type(err).__name__}: {err}") from None
    checkpoints = ()
    if spec.checkpoints is not None:
        checked = []
        for index, name in enumerate(spec.checkpoints):
            path = (Path(pipeline.folder) / name).resolve()
            if not path.is_file():
                raise PipelineError(f"{where}.checkpoints[{index}]: no such file {path}")
            try:
                _check_checkpoint(path, model)
            except BrainresError as err:
                raise PipelineError(f"{where}.checkpoints[{index}]: {err}") from None
            checked.append((str(path), file_digest(path)))
        checkpoints = tuple(checked)
    return CheckedModel(spec=spec, where=where, record=record, location=location, code=code, data=data,
                        checkpoints=checkpoints, variables=frozenset(variables), seeds=spec.seeds)


def _check_measures_model(spec: ModelSpec, where: str, pipeline: Pipeline) -> CheckedModel:
    from brainres.data.measures import read_measures

    path = (Path(pipeline.folder) / spec.measures).resolve()
    if not path.is_file():
        raise PipelineError(f"{where}.measures: no such file {path}")
    measures = read_measures(path, model_name=spec.name)
    source = Source(ref=spec.measures, kind="measures", path=str(path), digest=file_digest(path))
    return CheckedModel(spec=spec, where=where, measures=source, variables=frozenset(measures.data_vars),
                        seeds=tuple(int(s) for s in measures["seed"].values))


def _task_variants(spec: ModelSpec, family, base) -> list:
    """The variants of a task-family model: from its sweep, its variant tables, or just the base."""
    from brainres.families.base import Variant

    if spec.sweep is not None:
        options = dict(spec.sweep)
        kind = options.pop("kind")
        if kind not in family.sweeps:
            raise PipelineError(f"sweep kind {kind!r} is not one of the {family.id} family's sweeps "
                                f"({', '.join(sorted(family.sweeps)) or 'none'})")
        return family.sweeps[kind](base, options)
    if spec.variants:
        return [Variant(label=v["label"], overrides={k: x for k, x in v.items() if k not in ("label", "continue_from")},
                        continue_from=v.get("continue_from")) for v in spec.variants]
    return [Variant(label="base")]


def _check_task_model(spec: ModelSpec, where: str) -> CheckedModel:
    from brainres.families import get_family

    family = get_family(spec.family)
    table = f"{where} [model.{spec.family}]"
    try:
        base = family.config.from_dict(spec.settings)
    except SettingsError as err:
        raise PipelineError(f"{table}: {err}") from None
    try:
        variants = _task_variants(spec, family, base)
    except BrainresError as err:
        raise PipelineError(f"{where} [model.sweep]: {err}") from None
    checked, labels = [], []
    for variant in variants:
        if variant.label in labels:
            raise PipelineError(f"{where}: two variants are labelled {variant.label!r}")
        if variant.continue_from is not None and variant.continue_from not in labels:
            raise PipelineError(f"{where}: variant {variant.label!r} continues from {variant.continue_from!r}, "
                                f"which is not an earlier variant ({labels})")
        try:
            config = family.config.from_dict({**base.to_dict(), **variant.overrides})
        except SettingsError as err:
            raise PipelineError(f"{where} variant {variant.label!r}: {err}") from None
        checked.append((variant, config))
        labels.append(variant.label)
    return CheckedModel(spec=spec, where=where, seeds=spec.seeds, variants=tuple(checked))


def check_comparison_options(plugin, options: dict, where: str, problems: _Problems) -> dict | None:
    """A comparison's options against the plug-in's parameters and declared rules (``Comparison.options``).

    Unknown options (with the closest name), missing required ones, and every
    value its rule refuses (type, range, finiteness, choices) are added to
    ``problems``, each naming ``where.options.<key>``. Returns every option with
    defaults filled in, or None when something is wrong.
    """
    try:
        return plugin.check_options(options)
    except SettingsError as err:
        for problem in err.problems:
            key, sep, rest = problem.partition(": ")
            if sep and key in plugin.parameters():
                problems.add(f"{where}.options.{key}", rest)
            else:
                problems.add(f"{where}.options", problem)
        return None


def _check_levels(plugin, options: dict, comparison, export, where: str, problems: _Problems) -> None:
    """The occlusion levels the comparison reads must be among the export's."""
    if export is None:
        return
    exported = [float(level) for level in export.occlusion]
    missing = [level for level in plugin.needed_levels(options) if level not in exported]
    if missing:
        if "occlusion" in comparison.options:
            where, why = f"{where}.options.occlusion", ""
        elif "occlusion" in plugin.parameters():
            why = " (option occlusion, default 0.0: the unoccluded images humans saw)"
        else:
            why = " (the unoccluded level is its baseline)"
        problems.add(where, f"reads occlusion level(s) {missing}{why}, but the [[export]] of {comparison.model!r} "
                            f"on {comparison.stimuli!r} has levels {exported}")


def _check_data(plugin, source, where: str, problems: _Problems) -> None:
    """The data a comparison reads: of a kind the plug-in takes; a user's file read (and checked) now."""
    kinds = plugin.data_kind if isinstance(plugin.data_kind, tuple) else (plugin.data_kind,)
    if source is None or plugin.data_kind is None:
        return
    try:
        if source.kind == "registered":
            from brainres.data.registry import get_spec

            kind = get_spec(source.ref).kind
        elif source.kind == "table":
            from brainres.pipeline.sources import load_data

            load_data(source)  # the readers' checks (units, duplicates, separators) before any training
            kind = "human_trials"
        elif source.kind == "netcdf":
            from brainres.data.io import open_netcdf
            from brainres.data.schema import validate

            with open_netcdf(source.path) as opened:
                kind = opened.attrs.get("brainres_kind")
                if kind is None:
                    problems.add(f"{where}.data", f"{source.path} has no attribute brainres_kind; {plugin.id} takes "
                                                  f"{' or '.join(kinds)} data (brainres validate FILE --kind KIND)")
                    return
                if kind in kinds:
                    validate(opened, kind, source=source.path)
        else:
            return
    except BrainresError as err:
        problems.add(f"{where}.data", err)
        return
    if kind not in kinds:
        problems.add(f"{where}.data", f"{source.ref!r} is {kind} data; {plugin.id} takes {' or '.join(kinds)}")


def _check_export_epochs(export, checked: CheckedModel, spec, where: str, problems: _Problems) -> None:
    """Exports across training need a model trained here, and epochs before its last."""
    from brainres.train import TrainConfig

    if checked.checkpoints:
        problems.add(f"{where}.epochs", f"model {export.model!r} is brought as checkpoints; only a model trained by "
                                        "the pipeline keeps its weights across training")
        return
    try:
        epochs = TrainConfig.from_dict(spec.training).epochs
    except BrainresError:  # the model's own check reports its training table
        return
    late = [e for e in export.epochs if e >= epochs]
    if late:
        problems.add(f"{where}.epochs", f"{late} not before the last of model {export.model!r}'s {epochs} training "
                                        "epochs (the last is always exported)")


def _check_comparison(index: int, comparison, checked: CheckedModel, export, problems: _Problems) -> None:
    from brainres.compare import get_comparison

    where = f"[[comparison]] #{index + 1} ({comparison.kind})"
    plugin = get_comparison(comparison.kind)
    options = check_comparison_options(plugin, comparison.options, where, problems)
    if options is None:
        return
    if checked.variants:  # a task family's variables are known once it has measured itself
        return
    needed = plugin.requires(options) if plugin.requires else ()
    available = set(checked.variables)
    if export is not None and not export.latents:
        available.discard("latent")
    missing = [name for name in needed if name not in available]
    if missing:
        readouts = sorted(v for v in available if v in ("expected_halting_step", "median_halting_step",
                                                        "entropy_threshold_step", "uncertainty_auc"))
        if "latent" in missing:
            problems.add(where, f"needs the model's latents; export {comparison.model!r} on {comparison.stimuli!r} "
                                "with latents = true" + ("" if "latent" in checked.variables else
                                                         " (and the model must return 'latents')"))
        others = [m for m in missing if m != "latent"]
        if others:
            key = ".options.readout" if options.get("readout") in others else ""
            problems.add(where + key, f"model {comparison.model!r} will not export {others} (a model without "
                                      f"halting probabilities has no halting readouts); its readouts: "
                                      f"{readouts or 'none'}")
    if plugin.across_training and (export is None or not export.epochs):
        problems.add(where, f"compares the model across training; give the [[export]] of {comparison.model!r} on "
                            f"{comparison.stimuli!r} the epochs to export (epochs = [...])")
    if export is not None and plugin.min_occlusion_levels > len(export.occlusion):
        problems.add(where, f"needs at least {plugin.min_occlusion_levels} occlusion levels in the [[export]] of "
                            f"{comparison.model!r} on {comparison.stimuli!r} (it has {list(export.occlusion)})")
    _check_levels(plugin, options, comparison, export, where, problems)
    layers = sorted(v.partition(":")[2] for v in checked.variables if v.startswith("latent:"))
    wanted = options.get("layer")
    if layers and wanted not in (None, "all") and "latent" in needed:
        unknown = [name for name in ([wanted] if isinstance(wanted, str) else list(wanted)) if name not in layers]
        if unknown:
            problems.add(f"{where}.options.layer", f"model {comparison.model!r} has no latent layer(s) {unknown}; "
                                                   f"its layers: {layers}")


def check_pipeline(pipeline: Pipeline, *, device: str | None = None) -> CheckedPipeline:
    """Resolve and check everything a pipeline refers to; raise one :class:`PipelineError` listing all problems.

    ``device`` (e.g. ``"cuda"``) overrides every model's ``device``.
    """
    problems = _Problems()
    stimuli = _Stimuli()
    models = {}
    for index, spec in enumerate(pipeline.models):
        where = f"[[model]] #{index + 1} ({spec.name!r})"
        try:
            if spec.precomputed:
                models[spec.name] = _check_measures_model(spec, where, pipeline)
            elif spec.kind == "task":
                models[spec.name] = _check_task_model(spec, where)
            else:
                models[spec.name] = _check_image_model(spec, where, pipeline, stimuli, device)
        except BrainresError as err:
            problems.add(where, err)
    export_sources = {}
    exports = {}
    for index, export in enumerate(pipeline.exports):
        where = f"[[export]] #{index + 1}"
        exports[(export.model, export.stimuli)] = export
        try:
            source = resolve_source(export.stimuli, folder=pipeline.folder,
                                    options=pipeline.dataset_options(export.stimuli), role="stimuli",
                                    where=f"{where}.stimuli")
            export_sources[(export.model, export.stimuli)] = source
            model = models.get(export.model)
            if model is not None and export.epochs:
                _check_export_epochs(export, model, pipeline.model(export.model), where, problems)
            if model is not None and export.unknown_classes == "error":
                from brainres.models.inputs import class_indices

                class_indices(stimuli(source), model.record["classes"])
        except BrainresError as err:
            problems.add(where, err)
    data_sources = []
    for index, comparison in enumerate(pipeline.comparisons):
        where = f"[[comparison]] #{index + 1} ({comparison.kind})"
        source = None
        if comparison.data is not None:
            try:
                source = resolve_source(comparison.data, folder=pipeline.folder,
                                        options=pipeline.dataset_options(comparison.data), role="data",
                                        where=f"{where}.data")
            except BrainresError as err:
                problems.add(where, err)
            else:
                from brainres.compare import get_comparison

                _check_data(get_comparison(comparison.kind), source, where, problems)
        data_sources.append(source)
        model = models.get(comparison.model)
        export = exports.get((comparison.model, comparison.stimuli))
        if model is not None:
            _check_comparison(index, comparison, model, export, problems)
        else:  # the model has problems of its own; the options are checked all the same
            from brainres.compare import get_comparison

            check_comparison_options(get_comparison(comparison.kind), comparison.options, where, problems)
    described = {d.path for d in pipeline.datasets}
    used = {m.data for m in pipeline.models} | {e.stimuli for e in pipeline.exports} | \
        {c.data for c in pipeline.comparisons} | {m.classes for m in pipeline.models if isinstance(m.classes, str)}
    for path in sorted(described - used):
        problems.add("[[dataset]]", f"{path!r} is described but no model, export or comparison uses it")
    if problems.items:
        raise PipelineError(problems.items, pipeline.source)
    return CheckedPipeline(pipeline=pipeline, models=models, stimuli=export_sources, data=tuple(data_sources),
                           device=device)
