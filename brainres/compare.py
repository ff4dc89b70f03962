"""What a comparison returns, and the dispatcher in front of the comparison plug-ins.

A comparison plug-in (``brainres.comparisons.<module>``) takes a validated
model-measures dataset and a human or neural dataset and returns a
:class:`ComparisonResult`: the statistics (each a
:class:`brainres.stats.result.StatResult`), the data its figure is drawn from
(plain ``xr.Dataset``s; the report draws them, the plug-in does not), a
methods paragraph written from the options actually used, and notes (for
example that only the intersection of two stimulus sets was used).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
from typing import Any, Callable

import numpy as np
import pandas as pd
import xarray as xr

from brainres.errors import BrainresError, StimulusMismatchError, UnknownDatasetError
from brainres.settings import Rule, SettingsError


@dataclasses.dataclass(frozen=True)
class AnyOf(Rule):
    """A value that passes one of ``rules`` (the first that accepts it normalises it)."""

    rules: tuple

    def __init__(self, *rules):
        object.__setattr__(self, "rules", tuple(rules))

    def check(self, value):
        for rule in self.rules:
            try:
                return rule.check(value)
            except ValueError:
                continue
        raise ValueError(f"expected {self.describe()}, got {value!r}")

    def describe(self) -> str:
        return " or ".join(rule.describe() for rule in self.rules)


@dataclasses.dataclass
class ComparisonResult:
    """Result of one model-to-data comparison.

    Attributes
    ----------
    comparison : str
        Plug-in id, e.g. ``"time-vs-rt"``.
    title : str
        One line for the report.
    results : list of StatResult
        Every estimate with its interval and how it was obtained.
    figures : dict of str -> xarray.Dataset
        Data of each figure; ``attrs["figure"]`` names the kind (``"scatter"``
        or ``"lines"``, see ``brainres.report.figures``).
    methods : str
        What was done, generated from the options used.
    notes : list of str
        Anything a reader must know (intersections, exclusions...).
    inputs : dict
        Identity of the inputs (dataset ids, export config hash, n stimuli).
    """

    comparison: str
    title: str
    results: list
    figures: dict[str, xr.Dataset] = dataclasses.field(default_factory=dict)
    methods: str = ""
    notes: list[str] = dataclasses.field(default_factory=list)
    inputs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """Results as a tidy table, one row per estimate, with the comparison's id."""
        from brainres.stats.result import results_table

        table = results_table(self.results)
        table.insert(0, "comparison", self.comparison)
        return table

    def _repr_html_(self) -> str:
        """In a notebook: the heading, notes, figures (SVG), one sentence per estimate, and the table."""
        from brainres.report.html import comparison_section

        return comparison_section(self, 0)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A comparison plug-in's declaration.

    Attributes
    ----------
    id, description : str
    run : callable
        ``run(model_measures, data, **options) -> ComparisonResult``; its
        keyword-only parameters are the comparison's options (a pipeline's
        ``[comparison.options]`` is checked against them before any task runs).
    options : dict of str -> brainres.settings.Rule
        The rule of every option (every keyword-only parameter of ``run``):
        type, range, finiteness, choices. :meth:`check_options` applies them,
        in a pipeline's check and in :func:`compare`.
    model_kind : str
    data_kind : str, tuple of str or None
        Data-model kind(s) of the data it takes; None for a comparison of a
        model with itself (a family's headline across its variants).
    requires : callable, optional
        ``requires(options) -> tuple of str``: the model-export variables it
        needs with these options (so a pipeline can say before training that
        a model without halting has no ``expected_halting_step``).
    min_occlusion_levels : int
        Occlusion levels the export must have.
    model_kinds : tuple of str
        What models it takes: ``"image"`` (exports of image models),
        ``"measures"`` (precomputed), ``"task"`` (task families, their
        variants combined along ``variant``).
    families : tuple of str
        Only models of these families (empty: any of ``model_kinds``).
    occlusion_levels : callable, optional
        ``occlusion_levels(options) -> tuple of float``: levels the export must
        hold with these options (default: the ``occlusion`` option, if the
        comparison has one).
    across_training : bool
        The comparison reads the model at several training epochs: its
        measures have a ``variant`` dimension with a ``training_epoch``
        coordinate (a pipeline's ``[[export]] epochs``).
    """

    id: str
    description: str
    run: Callable[..., ComparisonResult]
    model_kind: str = "model_measures"
    data_kind: str | tuple | None = "human_trials"
    requires: Callable[[dict], tuple] | None = None
    min_occlusion_levels: int = 1
    model_kinds: tuple = ("image", "measures")
    families: tuple = ()
    options: dict = dataclasses.field(default_factory=dict)
    occlusion_levels: Callable[[dict], tuple] | None = None
    across_training: bool = False

    def parameters(self) -> dict:
        """The options ``run`` takes (its keyword-only parameters), by name."""
        parameters = list(inspect.signature(self.run).parameters.values())[2:]
        return {p.name: p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}

    def check_options(self, options: dict, where: str = "") -> dict:
        """Every option checked against its rule; returns all options (defaults filled in), normalised.

        Raises one :class:`~brainres.settings.SettingsError` listing every
        unknown or missing option and every value its rule refuses.
        """
        known = self.parameters()
        problems = []
        if not isinstance(options, dict):
            raise SettingsError([f"expected a table of options, got {options!r}"], where)
        for key in sorted(set(options) - set(known)):
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown option {key!r}{hint}; {self.id} takes {', '.join(sorted(known)) or 'none'}")
        checked = {}
        for name, parameter in known.items():
            rule = self.options.get(name)
            if name not in options:
                if parameter.default is inspect.Parameter.empty:
                    problems.append(f"missing option {name!r}" + (f" ({rule.describe()})" if rule else ""))
                else:
                    checked[name] = parameter.default
                continue
            value = options[name]
            if rule is not None:
                try:
                    checked[name] = rule.check(value)
                except ValueError as err:
                    problems.append(f"{name}: {err}")
                continue
            default = parameter.default  # an option without a declared rule: its default's type
            expected = type(default)
            if default is inspect.Parameter.empty or default is None or value is None:
                checked[name] = value
            elif isinstance(value, bool) != isinstance(default, bool) or not isinstance(
                    value, (int, float) if expected is float else expected):
                problems.append(f"{name}: expected {expected.__name__} (default {default!r}), got {value!r}")
            else:
                checked[name] = value
        if problems:
            raise SettingsError(problems, where)
        return checked

    def needed_levels(self, options: dict) -> tuple:
        """The occlusion levels an export must hold for these options."""
        if self.occlusion_levels is not None:
            return tuple(float(level) for level in self.occlusion_levels(options))
        if "occlusion" in self.parameters() and options.get("occlusion") is not None:
            return (float(options["occlusion"]),)
        return ()


def _index() -> dict[str, str]:
    plugins = importlib.import_module("brainres.comparisons")
    return {key: f"brainres.comparisons.{target}" for key, target in plugins.INDEX.items()}


def comparison_ids() -> list[str]:
    """Ids of every registered comparison."""
    return sorted(_index())


def get_comparison(comparison_id: str) -> Comparison:
    """The plug-in of ``comparison_id`` (imports only that module)."""
    index = _index()
    if comparison_id not in index:
        raise UnknownDatasetError(f"unknown comparison {comparison_id!r}; registered: {', '.join(sorted(index))}")
    module_name, _, attribute = index[comparison_id].partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def compare(comparison_id: str, model: xr.Dataset, data: xr.Dataset, **options) -> ComparisonResult:
    """Run a registered comparison: ``compare("time-vs-rt", export, trials, seed=0)``.

    Before the plug-in runs, its options are checked against its declared
    rules, both datasets are validated, and the model export is checked for
    every variable the comparison needs with these options, with finite values
    (an error names the stimuli that are not).
    """
    from brainres.comparisons._common import require_finite, require_variable
    from brainres.data.schema import validate

    plugin = get_comparison(comparison_id)
    options = plugin.check_options(options, where=f"{comparison_id} options")
    validate(model, plugin.model_kind, source="model measures")
    if plugin.data_kind is None:
        if data is not None:
            raise BrainresError(f"{comparison_id} compares a model with itself; it takes no data")
    else:
        if data is None:
            raise BrainresError(f"{comparison_id} compares the model with data; none was given")
        kinds = plugin.data_kind if isinstance(plugin.data_kind, tuple) else (plugin.data_kind,)
        declared = data.attrs.get("brainres_kind")
        if declared is not None and declared not in kinds:
            raise BrainresError(f"{comparison_id} takes data of kind {' or '.join(kinds)}; "
                                f"{data.attrs.get('dataset_id', 'the data')} is {declared}")
        validate(data, declared if declared in kinds else kinds[0], source=data.attrs.get("dataset_id", "data"))
    needed = [name for name in (plugin.requires(options) if plugin.requires else ()) if name]
    for name in needed:
        require_variable(model, name)
    levels = plugin.needed_levels(options)
    if levels and "occlusion" in model.dims:
        exported = [float(level) for level in model["occlusion"].values]
        missing = [level for level in levels if level not in exported]
        if missing:
            from brainres.comparisons._common import ComparisonError

            raise ComparisonError(f"{comparison_id} needs occlusion level(s) {missing}, which the export does not "
                                  f"hold (levels {exported})")
    for name in needed:
        require_finite(model, name)
    return plugin.run(model, data, **options)


def compare_models(comparison_id: str, models: dict, data: xr.Dataset, **options) -> ComparisonResult:
    """Run a comparison of several models with the same data: ``compare_models("model-comparison",
    {"lattice": export_a, "my-bl": export_b}, trials, readouts={"my-bl": "entropy_threshold_step"})``.

    Each model's export is validated; the plug-in's options are checked as in :func:`compare`.
    """
    from brainres.data.schema import validate

    plugin = get_comparison(comparison_id)
    if "multi" not in plugin.model_kinds:
        raise BrainresError(f"{comparison_id} compares one model at a time; use compare()")
    options = plugin.check_options(options, where=f"{comparison_id} options")
    for name, model in models.items():
        validate(model, plugin.model_kind, source=f"model {name!r}")
    validate(data, plugin.data_kind if isinstance(plugin.data_kind, str) else plugin.data_kind[0],
             source=data.attrs.get("dataset_id", "data"))
    return plugin.run(models, data, **options)


def match_stimuli(model_ids, data_ids, *, intersect: bool = False, model_name: str = "model export",
                  data_name: str = "data") -> tuple[np.ndarray, list[str]]:
    """The stimuli two datasets share, in the model's order.

    Without ``intersect`` the two sets must be identical: otherwise a
    :class:`StimulusMismatchError` lists the stimuli each side lacks. With it,
    the shared stimuli are used and the returned notes say how many were left out.
    """
    model_ids = [str(s) for s in np.asarray(model_ids)]
    data_set = set(str(s) for s in np.asarray(data_ids))
    model_set = set(model_ids)
    missing_in_model = sorted(data_set - model_set)
    missing_in_data = sorted(model_set - data_set)
    notes = []
    if missing_in_model or missing_in_data:
        if not intersect:
            raise StimulusMismatchError(missing_in_model, missing_in_data, left=model_name, right=data_name)
        notes.append(
            f"Only the {len(model_set & data_set)} stimuli common to {model_name} and {data_name} were used "
            f"({len(missing_in_model)} only in {data_name}, {len(missing_in_data)} only in {model_name})."
        )
    shared = np.array([s for s in model_ids if s in data_set])
    if shared.size < 3:
        raise BrainresError(f"{model_name} and {data_name} share {shared.size} stimuli; a comparison needs at least 3")
    return shared, notes
