"""Pipeline files: which models to train, where to export them, which comparisons to run.

A pipeline is a TOML file (``brainres run PIPELINE.toml``)::

    [run]
    name = "demo"                      # also the default run folder name
    executor = "local"                 # in-process | local (Dask LocalCluster) | scheduler | slurm
    workers = 2                        # local cluster worker processes
    threads_per_task = 1               # torch threads of every task
    # [run.slurm]                      # dask_jobqueue.SLURMCluster arguments, plus jobs = N
    # queue = "cpu"; cores = 4; memory = "16GB"; walltime = "02:00:00"; jobs = 8

    [[model]]
    name = "shape-lattice"
    family = "lattice"
    data = "geirhos2021-cue-conflict"  # training stimuli (a registered dataset)
    image_size = 32                    # images are resized to this side
    seeds = [0, 1, 2]
    [model.lattice]                    # LatticeConfig fields (bounds, pressures)
    max_channels = 16
    lambda_time = 0.01
    [model.training]                   # TrainConfig fields except seed and model
    epochs = 8

    [[export]]
    model = "shape-lattice"
    stimuli = "geirhos2021-edge"
    occlusion = [0.0, 0.25, 0.5]
    latents = false
    unknown_classes = "error"          # or "unscored": stimuli of classes the model never saw

    [[comparison]]
    kind = "time-vs-rt"                # a registered comparison plug-in
    model = "shape-lattice"
    stimuli = "geirhos2021-edge"       # which export of the model
    data = "geirhos2021-edge"          # the human or neural dataset
    [comparison.options]               # passed to the plug-in
    readout = "expected_halting_step"

Every problem is reported with the key it is about.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from brainres.errors import BrainresError

FAMILIES = ("lattice",)


class PipelineError(BrainresError, ValueError):
    """A pipeline file is malformed; the message names the key."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    data: str
    seeds: tuple[int, ...]
    image_size: int | None
    lattice: dict
    training: dict


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    model: str
    stimuli: str
    occlusion: tuple[float, ...]
    latents: bool
    batch_size: int
    unknown_classes: str


@dataclasses.dataclass(frozen=True)
class ComparisonSpec:
    kind: str
    model: str
    stimuli: str
    data: str
    options: dict

    @property
    def label(self) -> str:
        return f"{self.kind}: {self.model} on {self.stimuli} vs {self.data}"


EXECUTORS = ("in-process", "local", "scheduler", "slurm")


@dataclasses.dataclass(frozen=True)
class Pipeline:
    name: str
    models: tuple[ModelSpec, ...]
    exports: tuple[ExportSpec, ...]
    comparisons: tuple[ComparisonSpec, ...]
    source: str
    raw: dict
    executor: str = "local"
    workers: int = 2
    threads_per_task: int = 1
    slurm: dict = dataclasses.field(default_factory=dict)

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)


def _take(table: dict, key: str, where: str, kind, default=dataclasses.MISSING):
    if key not in table:
        if default is dataclasses.MISSING:
            raise PipelineError(f"{where}: missing key '{key}'")
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise PipelineError(f"{where}.{key}: expected {names}, got {value!r}")
    return value


def _check_keys(table: dict, allowed: set, where: str):
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise PipelineError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def parse_pipeline(raw: dict, source: str = "<pipeline>") -> Pipeline:
    """Check a pipeline mapping (parsed TOML) and return a :class:`Pipeline`."""
    _check_keys(raw, {"run", "model", "export", "comparison"}, source)
    run = _take(raw, "run", source, dict, {})
    where = f"{source} [run]"
    _check_keys(run, {"name", "executor", "workers", "threads_per_task", "slurm"}, where)
    name = _take(run, "name", where, str, Path(source).stem)
    executor = _take(run, "executor", where, str, "local")
    if executor not in EXECUTORS:
        raise PipelineError(f"{where}.executor: {executor!r} is not one of {list(EXECUTORS)}")
    workers = _take(run, "workers", where, int, 2)
    threads_per_task = _take(run, "threads_per_task", where, int, 1)
    if workers < 1 or threads_per_task < 1:
        raise PipelineError(f"{where}: workers and threads_per_task must be at least 1")
    slurm = dict(_take(run, "slurm", where, dict, {}))
    if executor == "slurm" and not slurm:
        raise PipelineError(f"{where}.slurm: the slurm executor needs a [run.slurm] table (queue, cores, memory, ...)")

    models = []
    for i, table in enumerate(_take(raw, "model", source, list, [])):
        where = f"{source} [[model]] #{i + 1}"
        _check_keys(table, {"name", "family", "data", "seeds", "image_size", "lattice", "training"}, where)
        family = _take(table, "family", where, str)
        if family not in FAMILIES:
            raise PipelineError(f"{where}.family: {family!r} is not one of {list(FAMILIES)}")
        seeds = _take(table, "seeds", where, list)
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise PipelineError(f"{where}.seeds: expected a non-empty list of non-negative integers, got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise PipelineError(f"{where}.seeds: {seeds!r} repeats a seed")
        training = dict(_take(table, "training", where, dict, {}))
        for forbidden in ("seed", "model"):
            if forbidden in training:
                raise PipelineError(f"{where}.training.{forbidden}: set seeds with 'seeds' and the model with [model.lattice]")
        models.append(ModelSpec(
            name=_take(table, "name", where, str), family=family, data=_take(table, "data", where, str),
            seeds=tuple(seeds), image_size=_take(table, "image_size", where, int, None),
            lattice=dict(_take(table, "lattice", where, dict, {})), training=training,
        ))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise PipelineError(f"{source}: model names must be unique, got {names}")

    exports = []
    for i, table in enumerate(_take(raw, "export", source, list, [])):
        where = f"{source} [[export]] #{i + 1}"
        _check_keys(table, {"model", "stimuli", "occlusion", "latents", "batch_size", "unknown_classes"}, where)
        model = _take(table, "model", where, str)
        if model not in names:
            raise PipelineError(f"{where}.model: no [[model]] is named {model!r} (models: {names})")
        occlusion = _take(table, "occlusion", where, list, [0.0])
        if not occlusion or not all(isinstance(o, (int, float)) and 0 <= o <= 1 for o in occlusion):
            raise PipelineError(f"{where}.occlusion: expected fractions in [0, 1], got {occlusion!r}")
        exports.append(ExportSpec(model=model, stimuli=_take(table, "stimuli", where, str),
                                  occlusion=tuple(float(o) for o in occlusion),
                                  latents=_take(table, "latents", where, bool, False),
                                  batch_size=_take(table, "batch_size", where, int, 128),
                                  unknown_classes=_take(table, "unknown_classes", where, str, "error")))
        if exports[-1].unknown_classes not in ("error", "unscored"):
            raise PipelineError(f"{where}.unknown_classes: expected 'error' or 'unscored'")
    exported = {(e.model, e.stimuli) for e in exports}
    if len(exported) != len(exports):
        raise PipelineError(f"{source}: each (model, stimuli) pair may be exported once")

    comparisons = []
    for i, table in enumerate(_take(raw, "comparison", source, list, [])):
        where = f"{source} [[comparison]] #{i + 1}"
        _check_keys(table, {"kind", "model", "stimuli", "data", "options"}, where)
        spec = ComparisonSpec(kind=_take(table, "kind", where, str), model=_take(table, "model", where, str),
                              stimuli=_take(table, "stimuli", where, str), data=_take(table, "data", where, str),
                              options=dict(_take(table, "options", where, dict, {})))
        if (spec.model, spec.stimuli) not in exported:
            raise PipelineError(f"{where}: no [[export]] of model {spec.model!r} on stimuli {spec.stimuli!r}")
        from brainres.compare import comparison_ids

        if spec.kind not in comparison_ids():
            raise PipelineError(f"{where}.kind: {spec.kind!r} is not a registered comparison ({comparison_ids()})")
        comparisons.append(spec)
    return Pipeline(name=name, models=tuple(models), exports=tuple(exports), comparisons=tuple(comparisons),
                    source=source, raw=raw, executor=executor, workers=workers, threads_per_task=threads_per_task,
                    slurm=slurm)


def load_pipeline(path) -> Pipeline:
    """Read and check a pipeline TOML file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such pipeline file") from None
    except tomllib.TOMLDecodeError as err:
        raise PipelineError(f"{path}: not valid TOML ({err})") from None
    return parse_pipeline(raw, source=str(path))
