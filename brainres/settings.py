"""Declared settings: the one mechanism that checks every configuration in brainres.

A configuration is a frozen dataclass that derives from :class:`Settings` and
declares, for each field, its default and a rule (:func:`setting`). One
function, :func:`check_settings`, applies the rules, so a model family, the
trainer and the pipeline cannot drift apart in what they accept: every problem
is listed at once with the key it is about, numbers are finite, and a value is
normalised the same way everywhere (an integer given for a real becomes a
float, a list for a sequence becomes a tuple).

Examples
--------
>>> import dataclasses
>>> @dataclasses.dataclass(frozen=True)
... class Demo(Settings):
...     width: int = setting(8, Integer(low=1), "units per layer")
...     rate: float = setting(0.1, Real(low=0, low_open=True), "learning rate")
>>> Demo.from_dict({"width": 4, "rate": 1}).rate
1.0
>>> Demo.from_dict({"widht": 4}, where="[model.demo]")
Traceback (most recent call last):
...
brainres.settings.SettingsError: [model.demo]: unknown key 'widht' (did you mean 'width'?); keys: rate, width
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from typing import Any

from brainres.errors import ProblemsError
from brainres.hashing import canonical_hash


class SettingsError(ProblemsError):
    """One or more settings are unknown, of the wrong type or out of range; lists them all."""

    def located(self, where: str) -> "SettingsError":
        """The same problems, said to be in ``where`` (for example a pipeline table)."""
        return SettingsError(self.problems, f"{where}{' ' + self.where if self.where else ''}")


# ----------------------------------------------------------------------- rules
class Rule:
    """A constraint on one value; :meth:`check` returns the normalised value or raises ValueError."""

    def check(self, value):
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class Integer(Rule):
    low: int | None = None
    high: int | None = None

    def check(self, value):
        if not _is_int(value):
            raise ValueError(f"expected an integer, got {value!r}")
        value = int(value)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ValueError(f"expected {self.describe()}, got {value}")
        return value

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"an integer in [{self.low}, {self.high}]"
        if self.low is not None:
            return f"an integer >= {self.low}"
        if self.high is not None:
            return f"an integer <= {self.high}"
        return "an integer"


@dataclasses.dataclass(frozen=True)
class Real(Rule):
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def check(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value}")
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            raise ValueError(f"expected {self.describe()}, got {value:g}")
        return value

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"a number {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"a number {'<' if self.high_open else '<='} {self.high:g}"
        return "a finite number"


@dataclasses.dataclass(frozen=True)
class Choice(Rule):
    values: tuple

    def __init__(self, *values):
        object.__setattr__(self, "values", tuple(values))

    def check(self, value):
        if value not in self.values or isinstance(value, bool) != any(isinstance(v, bool) for v in self.values):
            close = difflib.get_close_matches(str(value), [str(v) for v in self.values], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"expected {self.describe()}, got {value!r}{hint}")
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclasses.dataclass(frozen=True)
class Boolean(Rule):
    def check(self, value):
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value

    def describe(self) -> str:
        return "true or false"


@dataclasses.dataclass(frozen=True)
class Text(Rule):
    non_empty: bool = True

    def check(self, value):
        if not isinstance(value, str) or (self.non_empty and not value.strip()):
            raise ValueError(f"expected {self.describe()}, got {value!r}")
        return value

    def describe(self) -> str:
        return "a non-empty string" if self.non_empty else "a string"


@dataclasses.dataclass(frozen=True)
class Optional(Rule):
    """``None`` or a value that passes ``rule``."""

    rule: Rule

    def check(self, value):
        return None if value is None else self.rule.check(value)

    def describe(self) -> str:
        return f"{self.rule.describe()} or none"


@dataclasses.dataclass(frozen=True)
class Sequence(Rule):
    """A non-empty list of values that each pass ``item``; stored as a tuple."""

    item: Rule
    unique: bool = False
    non_empty: bool = True

    def check(self, value):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list of {self.item.describe()}, got {value!r}")
        if self.non_empty and not value:
            raise ValueError(f"expected a non-empty list of {self.item.describe()}")
        checked = []
        for index, item in enumerate(value):
            try:
                checked.append(self.item.check(item))
            except ValueError as err:
                raise ValueError(f"item {index}: {err}") from None
        if self.unique and len(set(checked)) != len(checked):
            raise ValueError(f"expected distinct values, got {list(value)!r}")
        return tuple(checked)

    def describe(self) -> str:
        return f"a list of {self.item.describe()}"


@dataclasses.dataclass(frozen=True)
class Mapping(Rule):
    """A table (dict) with string keys; values are not checked here."""

    def check(self, value):
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueError(f"expected a table of named values, got {value!r}")
        return dict(value)

    def describe(self) -> str:
        return "a table"


def setting(default, rule: Rule, doc: str = ""):
    """A dataclass field with its rule and one-line documentation."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"rule": rule, "doc": doc})
    return dataclasses.field(default=default, metadata={"rule": rule, "doc": doc})


# ---------------------------------------------------------------- the checker
def unknown_keys(values: dict, known) -> list[str]:
    """One problem per key of ``values`` not in ``known``, with the closest known key as a hint."""
    problems = []
    for key in sorted(set(values) - set(known)):
        close = difflib.get_close_matches(key, list(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"unknown key {key!r}{hint}; keys: {', '.join(sorted(known))}")
    return problems


def check_settings(instance) -> None:
    """Apply every field's rule to ``instance`` (in place, normalising); raise one error listing all problems."""
    problems = []
    for field in dataclasses.fields(instance):
        rule = field.metadata.get("rule")
        if rule is None:
            continue
        try:
            object.__setattr__(instance, field.name, rule.check(getattr(instance, field.name)))
        except ValueError as err:
            problems.append(f"{field.name}: {err}")
    if problems:
        raise SettingsError(problems)


def describe_settings(cls) -> list[dict]:
    """Name, default, rule and documentation of every declared setting (for help texts and docs)."""
    rows = []
    for field in dataclasses.fields(cls):
        if "rule" not in field.metadata:
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        rows.append({"name": field.name, "default": default, "rule": field.metadata["rule"].describe(),
                     "doc": field.metadata.get("doc", "")})
    return rows


class Settings:
    """Base of every declared configuration: checked on construction, round-trips through plain dicts."""

    def __post_init__(self):
        check_settings(self)
        self.check_together()

    def check_together(self) -> None:
        """Override for rules that tie several fields together; raise :class:`SettingsError`."""

    def to_dict(self) -> dict:
        """Plain JSON-serialisable form (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict, where: str = ""):
        """Build from a mapping; unknown keys, wrong types and ranges are all reported, with ``where``."""
        if not isinstance(values, dict):
            raise SettingsError([f"expected a table of settings, got {values!r}"], where)
        known = [f.name for f in dataclasses.fields(cls) if f.init]
        problems = unknown_keys(values, known)
        try:
            instance = cls(**{k: v for k, v in values.items() if k in known})
        except SettingsError as err:
            problems.extend(err.problems)
        if problems:
            raise SettingsError(problems, where)
        return instance

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def config_hash(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`to_dict` (stable across runs and machines)."""
        return canonical_hash(self.to_dict())


def default_of(cls, name: str) -> Any:
    """The declared default of one setting: the single source for API, command line and pipelines."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    return field.default if field.default is not dataclasses.MISSING else field.default_factory()
