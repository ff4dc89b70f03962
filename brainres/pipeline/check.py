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
import inspect
from pathlib import Path

import torch

from brainres.errors import BrainresError
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
    try:
        settings, location = family.settings(spec.settings, in_channels=in_channels, n_classes=len(classes),
                                             folder=pipeline.folder)
    except SettingsError as err:
        raise PipelineError(f"{table}: {err}") from None
    except BrainresError as err:
        raise PipelineError(f"{where}: {err}") from None
    record = {"family": spec.family, "settings": settings, "classes": classes, "in_channels": int(in_channels),
              "image_size": spec.image_size}
    device = device or spec.device
    if spec.data is not None:
        try:
            TrainConfig.from_dict({**spec.training, "seed": spec.seeds[0], "device": device})
        except SettingsError as err:
            raise PipelineError(f"{where} [model.training]: {err}") from None
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


def _check_comparison(index: int, comparison, checked: CheckedModel, export, problems: _Problems) -> None:
    from brainres.compare import get_comparison

    where = f"[[comparison]] #{index + 1} ({comparison.kind})"
    plugin = get_comparison(comparison.kind)
    signature = inspect.signature(plugin.run)
    parameters = list(signature.parameters.values())[2:]
    known = {p.name: p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
    for key in sorted(set(comparison.options) - set(known)):
        import difflib

        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.add(f"{where}.options", f"unknown option {key!r}{hint}; {comparison.kind} takes "
                                         f"{', '.join(sorted(known))}")
    for key, value in comparison.options.items():
        parameter = known.get(key)
        if parameter is None or parameter.default is inspect.Parameter.empty or parameter.default is None:
            continue
        expected = type(parameter.default)
        numeric = expected in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (isinstance(value, expected) or numeric) or (expected is int and isinstance(value, float)):
            problems.add(f"{where}.options.{key}", f"expected {expected.__name__} (default {parameter.default!r}), "
                                                   f"got {value!r}")
    options = {name: p.default for name, p in known.items()} | comparison.options
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
            problems.add(where, f"model {comparison.model!r} will not export {others} (a model without halting "
                                f"probabilities has no halting readouts); its readouts: {readouts or 'none'}")
    if export is not None and plugin.min_occlusion_levels > len(export.occlusion):
        problems.add(where, f"needs at least {plugin.min_occlusion_levels} occlusion levels in the [[export]] of "
                            f"{comparison.model!r} on {comparison.stimuli!r} (it has {list(export.occlusion)})")


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
        data_sources.append(source)
        model = models.get(comparison.model)
        if model is not None:
            _check_comparison(index, comparison, model, exports.get((comparison.model, comparison.stimuli)), problems)
    described = {d.path for d in pipeline.datasets}
    used = {m.data for m in pipeline.models} | {e.stimuli for e in pipeline.exports} | \
        {c.data for c in pipeline.comparisons} | {m.classes for m in pipeline.models if isinstance(m.classes, str)}
    for path in sorted(described - used):
        problems.add("[[dataset]]", f"{path!r} is described but no model, export or comparison uses it")
    if problems.items:
        raise PipelineError(problems.items, pipeline.source)
    return CheckedPipeline(pipeline=pipeline, models=models, stimuli=export_sources, data=tuple(data_sources),
                           device=device)
