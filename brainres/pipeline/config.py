"""Pipeline files: which models to train (or bring), where to export them, which comparisons to run.

A pipeline is a TOML file (``brainres run PIPELINE.toml``)::

    [run]
    name = "demo"                      # also the default run folder name
    executor = "local"                 # in-process | local (Dask LocalCluster) | scheduler | slurm
    workers = 2                        # local cluster worker processes
    threads_per_task = 1               # torch threads of every task

    [[model]]                          # a brainres family ...
    name = "shape-lattice"
    family = "lattice"
    data = "geirhos2021-cue-conflict"  # training images: a registered dataset or a folder of images
    image_size = 32
    seeds = [0, 1, 2]
    [model.lattice]                    # the family's settings
    lambda_time = 0.01
    [model.training]                   # brainres.train.TrainConfig fields except seed and device
    epochs = 8

    [[model]]                          # ... any user's nn.Module ...
    name = "my-bl"
    family = "torch"
    factory = "blnet:build"            # module:callable; the pipeline file's folder is importable
    options = { n_classes = 16 }
    classes = "geirhos2021-cue-conflict"
    in_channels = 1
    seeds = [0, 1]
    checkpoints = ["weights/seed-0.pt", "weights/seed-1.pt"]   # or data = ... to train it

    [[model]]                          # ... or measures made elsewhere
    name = "their-model"
    measures = "their_model_time.csv"

    [[export]]
    model = "shape-lattice"
    stimuli = "geirhos2021-edge"       # a registered stimulus set or a folder of images
    occlusion = [0.0, 0.25, 0.5]
    epochs = [2, 4]                    # also export the weights kept after these epochs

    [[comparison]]
    kind = "time-vs-rt"
    model = "shape-lattice"
    stimuli = "geirhos2021-edge"       # which export (omit for a measures model)
    data = "geirhos2021-edge"          # a registered dataset, or a file (trials table, netCDF)
    [comparison.options]
    readout = "expected_halting_step"

    [[dataset]]                        # how to read a file or folder that the pipeline names
    path = "my_trials.tsv"
    columns = { rt = "RT_ms", subject = "participant" }
    rt_unit = "ms"

This module checks the file's structure (keys, types, references between
tables) without loading any data; :mod:`brainres.pipeline.check` then resolves
datasets, builds every model once and checks comparisons against what the
models give, before any task runs. Every problem names its table and key.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from pathlib import Path

from brainres.errors import ProblemsError
from brainres.settings import default_of
from brainres.train import TrainConfig


class PipelineError(ProblemsError):
    """A pipeline file is malformed; the message names every problem with its table and key."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One ``[[model]]``: a family's network (trained here or from checkpoints) or precomputed measures."""

    name: str
    family: str | None
    seeds: tuple[int, ...] = ()
    data: str | None = None
    checkpoints: tuple[str, ...] | None = None
    measures: str | None = None
    image_size: int | None = None
    in_channels: int | None = None
    classes: str | tuple[str, ...] | None = None
    settings: dict = dataclasses.field(default_factory=dict)
    training: dict = dataclasses.field(default_factory=dict)
    device: str = "cpu"
    sweep: dict | None = None          # task families: a [model.sweep] table
    variants: tuple = ()               # task families: [[model.variant]] tables

    @property
    def precomputed(self) -> bool:
        return self.measures is not None

    @property
    def kind(self) -> str:
        """``"measures"`` (precomputed), ``"image"`` (an image family) or ``"task"`` (a task family)."""
        if self.precomputed:
            return "measures"
        from brainres.families import get_family
        from brainres.families.base import TaskFamily

        return "task" if isinstance(get_family(self.family), TaskFamily) else "image"


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    model: str
    stimuli: str
    occlusion: tuple[float, ...]
    latents: bool
    batch_size: int
    unknown_classes: str
    entropy_threshold: float = 0.5
    epochs: tuple[int, ...] = ()       # training epochs also exported (the final one always is)


@dataclasses.dataclass(frozen=True)
class ComparisonSpec:
    kind: str
    model: str
    stimuli: str | None
    data: str
    options: dict

    @property
    def label(self) -> str:
        on = f" on {self.stimuli}" if self.stimuli else ""
        return f"{self.kind}: {self.model}{on} vs {self.data}"


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A ``[[dataset]]``: how to read a file or folder the pipeline names by path."""

    path: str
    options: dict


EXECUTORS = ("in-process", "local", "scheduler", "slurm")
_RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
MODEL_KEYS = {"name", "family", "data", "checkpoints", "seeds", "image_size", "in_channels", "classes",
              "training", "device"}


@dataclasses.dataclass(frozen=True)
class Pipeline:
    name: str
    models: tuple[ModelSpec, ...]
    exports: tuple[ExportSpec, ...]
    comparisons: tuple[ComparisonSpec, ...]
    source: str
    raw: dict
    folder: str = "."
    datasets: tuple[DatasetSpec, ...] = ()
    executor: str = "local"
    workers: int = 2
    threads_per_task: int = 1
    slurm: dict = dataclasses.field(default_factory=dict)

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)

    def dataset_options(self, path: str) -> dict:
        """Reading options of a path named in the pipeline (empty if it has no ``[[dataset]]``)."""
        return next((d.options for d in self.datasets if d.path == path), {})


class _Reader:
    """Takes typed values out of one table and collects every problem instead of stopping at the first."""

    def __init__(self, table, where: str, problems: list):
        self.table = table if isinstance(table, dict) else {}
        self.where, self.problems = where, problems
        if not isinstance(table, dict):
            problems.append(f"{where}: expected a table, got {table!r}")

    def keys(self, allowed: set):
        import difflib

        for key in sorted(set(self.table) - allowed):
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.problems.append(f"{self.where}: unknown key {key!r}{hint}; allowed: {', '.join(sorted(allowed))}")

    def take(self, key: str, kind, default=dataclasses.MISSING):
        if key not in self.table:
            if default is dataclasses.MISSING:
                self.problems.append(f"{self.where}: missing key '{key}'")
                return None
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (int in kinds and bool not in kinds and isinstance(value, bool)):
            names = " or ".join(k.__name__ for k in kinds)
            self.problems.append(f"{self.where}.{key}: expected {names}, got {value!r}")
            return None if default is dataclasses.MISSING else default
        if isinstance(value, float) and not math.isfinite(value):
            self.problems.append(f"{self.where}.{key}: expected a finite number, got {value}")
            return None if default is dataclasses.MISSING else default
        return value


def _positive(reader: _Reader, key: str, default=None):
    value = reader.take(key, int, default)
    if value is not None and value < 1:
        reader.problems.append(f"{reader.where}.{key}: expected a positive integer, got {value}")
        return None
    return value


def _seeds(reader: _Reader):
    seeds = reader.take("seeds", list)
    if seeds is None:
        return ()
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        reader.problems.append(f"{reader.where}.seeds: expected a non-empty list of non-negative integers, got {seeds!r}")
        return ()
    if len(set(seeds)) != len(seeds):
        reader.problems.append(f"{reader.where}.seeds: {seeds!r} repeats a seed")
    return tuple(seeds)


def _parse_model(table, where: str, problems: list) -> ModelSpec | None:
    from brainres.families import family_ids, get_family

    reader = _Reader(table, where, problems)
    name = reader.take("name", str)
    if "measures" in reader.table:
        reader.keys({"name", "measures"})
        return ModelSpec(name=name, family=None, measures=reader.take("measures", str))
    family_id = reader.take("family", str)
    if family_id is None:
        return None
    if family_id not in family_ids():
        problems.append(f"{where}.family: {family_id!r} is not one of {family_ids()} "
                        "(or give 'measures' = a file of precomputed model measures)")
        return None
    family = get_family(family_id)
    from brainres.families.base import TaskFamily

    if isinstance(family, TaskFamily):
        return _parse_task_model(reader, name, family_id, where, problems)
    allowed = MODEL_KEYS | set(family.model_keys) | ({family.settings_table} if family.settings_table else set())
    reader.keys(allowed)
    if family.settings_table:
        settings = dict(reader.take(family.settings_table, dict, {}) or {})
    else:
        settings = {key: reader.table[key] for key in family.model_keys if key in reader.table}
    seeds = _seeds(reader)
    data, checkpoints = reader.take("data", str, None), reader.take("checkpoints", list, None)
    if (data is None) == (checkpoints is None):
        problems.append(f"{where}: give either 'data' (train it here) or 'checkpoints' (trained weights), not "
                        f"{'both' if data else 'neither'}")
    if checkpoints is not None:
        if not all(isinstance(c, str) for c in checkpoints):
            problems.append(f"{where}.checkpoints: expected a list of file paths, got {checkpoints!r}")
        elif seeds and len(checkpoints) != len(seeds):
            problems.append(f"{where}.checkpoints: {len(checkpoints)} files for {len(seeds)} seeds; give one per seed, "
                            "in the order of 'seeds'")
        checkpoints = tuple(checkpoints)
    training = dict(reader.take("training", dict, {}) or {})
    for forbidden, instead in (("seed", "seeds"), ("device", "device at the [[model]] level"), ("model", None)):
        if forbidden in training:
            problems.append(f"{where}.training.{forbidden}: set it with '{instead or family.settings_table}'"
                            if instead or family.settings_table else f"{where}.training.{forbidden}: unknown key")
    if checkpoints is not None and training:
        problems.append(f"{where}.training: a model brought as checkpoints is not trained here; drop [model.training]")
    classes = reader.take("classes", (str, list), None)
    if isinstance(classes, list):
        if len(classes) < 2 or not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes):
            problems.append(f"{where}.classes: expected a dataset id or a list of at least 2 distinct class names")
        classes = tuple(classes)
    if checkpoints is not None and classes is None:
        problems.append(f"{where}.classes: a model brought as checkpoints needs its class order "
                        "(a dataset id or a list of names)")
    device = reader.take("device", str, default_of(TrainConfig, "device"))
    return ModelSpec(name=name, family=family_id, seeds=seeds, data=data, checkpoints=checkpoints,
                     image_size=_positive(reader, "image_size"), in_channels=_positive(reader, "in_channels"),
                     classes=classes, settings=settings, training=training, device=device)


def _parse_task_model(reader: _Reader, name: str, family_id: str, where: str, problems: list) -> ModelSpec:
    """A model of a task family: its settings table, seeds, and an optional sweep or list of variants."""
    reader.keys({"name", "family", "seeds", family_id, "sweep", "variant"})
    settings = dict(reader.take(family_id, dict, {}) or {})
    sweep = reader.take("sweep", dict, None)
    if sweep is not None and not isinstance(sweep.get("kind"), str):
        problems.append(f"{where}.sweep: needs kind = the name of one of the family's sweeps")
    variants = reader.take("variant", list, []) or []
    for index, variant in enumerate(variants):
        if not isinstance(variant, dict) or not isinstance(variant.get("label"), str):
            problems.append(f"{where}.variant #{index + 1}: expected a table with a label and the settings it changes")
    if sweep is not None and variants:
        problems.append(f"{where}: give a [model.sweep] or [[model.variant]] tables, not both")
    return ModelSpec(name=name, family=family_id, seeds=_seeds(reader), settings=settings,
                     sweep=dict(sweep) if sweep else None, variants=tuple(dict(v) for v in variants))


def _parse_export(table, where: str, problems: list, models: dict) -> ExportSpec | None:
    reader = _Reader(table, where, problems)
    reader.keys({"model", "stimuli", "occlusion", "latents", "batch_size", "unknown_classes", "entropy_threshold",
                 "epochs"})
    model = reader.take("model", str)
    if model is not None and model not in models:
        problems.append(f"{where}.model: no [[model]] is named {model!r} (models: {sorted(models)})")
    elif model is not None and models[model].kind != "image":
        problems.append(f"{where}.model: {model!r} measures itself ({'precomputed measures' if models[model].precomputed else 'a task family'}); "
                        "it has nothing to export (compare it directly)")
    occlusion = reader.take("occlusion", list, [0.0]) or [0.0]
    if not all(isinstance(o, (int, float)) and not isinstance(o, bool) and 0 <= o <= 1 for o in occlusion):
        problems.append(f"{where}.occlusion: expected fractions in [0, 1], got {occlusion!r}")
        occlusion = [0.0]
    elif len(set(occlusion)) != len(occlusion):
        problems.append(f"{where}.occlusion: {occlusion!r} repeats a level")
    unknown = reader.take("unknown_classes", str, "error")
    if unknown not in ("error", "unscored"):
        problems.append(f"{where}.unknown_classes: expected 'error' or 'unscored', got {unknown!r}")
    threshold = reader.take("entropy_threshold", float, 0.5)
    if threshold is not None and not 0 < threshold <= 1:
        problems.append(f"{where}.entropy_threshold: expected a number in (0, 1], got {threshold}")
    epochs = reader.take("epochs", list, []) or []
    if not all(isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in epochs):
        problems.append(f"{where}.epochs: expected training epochs (whole numbers from 1), got {epochs!r}")
        epochs = []
    elif len(set(epochs)) != len(epochs):
        problems.append(f"{where}.epochs: {epochs!r} repeats an epoch")
    return ExportSpec(model=model, stimuli=reader.take("stimuli", str), occlusion=tuple(float(o) for o in occlusion),
                      epochs=tuple(sorted(epochs)),
                      latents=bool(reader.take("latents", bool, False)),
                      batch_size=_positive(reader, "batch_size", 128) or 128, unknown_classes=unknown,
                      entropy_threshold=threshold or 0.5)


def parse_pipeline(raw: dict, source: str = "<pipeline>", folder=None, *, allow_empty: bool = False) -> Pipeline:
    """Check a pipeline mapping (parsed TOML) and return a :class:`Pipeline`.

    ``folder`` is where relative paths (data, stimuli, checkpoints, measures,
    the factory's module) are found: the pipeline file's folder, or the
    working directory for a mapping built in Python. ``allow_empty`` lets a
    pipeline have no comparison (``brainres train`` checks one model that way).
    """
    problems: list[str] = []
    top = _Reader(raw, source, problems)
    top.keys({"run", "model", "export", "comparison", "dataset"})
    run = _Reader(top.take("run", dict, {}) or {}, "[run]", problems)
    run.keys({"name", "executor", "workers", "threads_per_task", "slurm"})
    name = run.take("name", str, re.sub(r"[^A-Za-z0-9._-]+", "-", Path(source).stem).strip("-.") or "pipeline")
    if name is not None and not _RUN_NAME.fullmatch(name):
        problems.append(f"[run].name: {name!r} must be a plain name (letters, digits, '.', '_', '-'; not a path), "
                        "since it names the run folder")
    executor = run.take("executor", str, "local")
    if executor not in EXECUTORS:
        problems.append(f"[run].executor: {executor!r} is not one of {list(EXECUTORS)}")
    workers = _positive(run, "workers", 2) or 2
    threads_per_task = _positive(run, "threads_per_task", 1) or 1
    slurm = dict(run.take("slurm", dict, {}) or {})
    if executor == "slurm" and not slurm:
        problems.append("[run].slurm: the slurm executor needs a [run.slurm] table (queue, cores, memory, ...)")

    models = []
    for i, table in enumerate(top.take("model", list, []) or []):
        spec = _parse_model(table, f"[[model]] #{i + 1}", problems)
        if spec is not None:
            models.append(spec)
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        problems.append(f"[[model]]: names must be unique, got {names}")
    by_name = {m.name: m for m in models}

    exports = []
    for i, table in enumerate(top.take("export", list, []) or []):
        spec = _parse_export(table, f"[[export]] #{i + 1}", problems, by_name)
        if spec is not None:
            exports.append(spec)
    exported = [(e.model, e.stimuli) for e in exports]
    if len(set(exported)) != len(exported):
        problems.append("[[export]]: each (model, stimuli) pair may be exported once")

    comparisons = []
    for i, table in enumerate(top.take("comparison", list, []) or []):
        where = f"[[comparison]] #{i + 1}"
        reader = _Reader(table, where, problems)
        reader.keys({"kind", "model", "stimuli", "data", "options"})
        spec = ComparisonSpec(kind=reader.take("kind", str), model=reader.take("model", str),
                              stimuli=reader.take("stimuli", str, None), data=reader.take("data", str, None),
                              options=dict(reader.take("options", dict, {}) or {}))
        model = by_name.get(spec.model)
        if spec.model is not None and model is None:
            problems.append(f"{where}.model: no [[model]] is named {spec.model!r} (models: {sorted(by_name)})")
        elif model is not None and model.kind == "image" and (spec.model, spec.stimuli) not in exported:
            problems.append(f"{where}: no [[export]] of model {spec.model!r} on stimuli {spec.stimuli!r}")
        from brainres.compare import comparison_ids, get_comparison

        if spec.kind is not None and spec.kind not in comparison_ids():
            problems.append(f"{where}.kind: {spec.kind!r} is not a registered comparison ({comparison_ids()})")
        elif spec.kind is not None:
            plugin = get_comparison(spec.kind)
            if plugin.data_kind is None and spec.data is not None:
                problems.append(f"{where}.data: {spec.kind} compares the model with itself; it takes no data")
            elif plugin.data_kind is not None and spec.data is None:
                problems.append(f"{where}: missing key 'data' (the human or neural data {spec.kind} compares with)")
            if model is not None and model.kind not in plugin.model_kinds:
                problems.append(f"{where}: {spec.kind} takes {' or '.join(plugin.model_kinds)} models; "
                                f"{spec.model!r} is a{'n' if model.kind == 'image' else ''} {model.kind} model")
            elif model is not None and plugin.families and model.family not in plugin.families:
                problems.append(f"{where}: {spec.kind} takes models of the {', '.join(plugin.families)} family; "
                                f"{spec.model!r} is {model.family}")
        comparisons.append(spec)

    datasets = []
    for i, table in enumerate(top.take("dataset", list, []) or []):
        reader = _Reader(table, f"[[dataset]] #{i + 1}", problems)
        path = reader.take("path", str)
        datasets.append(DatasetSpec(path=path, options={k: v for k, v in reader.table.items() if k != "path"}))
    paths = [d.path for d in datasets]
    if len(set(paths)) != len(paths):
        problems.append(f"[[dataset]]: each path may be described once, got {paths}")
    if not models:
        problems.append("the pipeline has no [[model]]: there is nothing to run")
    elif not comparisons and not allow_empty:
        problems.append("the pipeline has no [[comparison]]: its report would be empty")
    if problems:
        raise PipelineError(problems, source)
    return Pipeline(name=name, models=tuple(models), exports=tuple(exports), comparisons=tuple(comparisons),
                    source=source, raw=raw, folder=str(Path(folder or ".").resolve()), datasets=tuple(datasets),
                    executor=executor, workers=workers, threads_per_task=threads_per_task, slurm=slurm)


def load_pipeline(path) -> Pipeline:
    """Read and check a pipeline TOML file; relative paths in it are relative to its folder."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such pipeline file") from None
    except IsADirectoryError:
        raise PipelineError(f"{path}: is a folder, not a pipeline file") from None
    except tomllib.TOMLDecodeError as err:
        raise PipelineError(f"{path}: not valid TOML ({err})") from None
    return parse_pipeline(raw, source=str(path), folder=path.parent)
