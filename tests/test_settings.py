"""brainres.settings: the one mechanism that checks every configuration."""

import dataclasses
import math

import pytest

from brainres.errors import BrainresError
from brainres.settings import (
    Boolean,
    Choice,
    Integer,
    Mapping,
    Optional,
    Real,
    Sequence,
    Settings,
    SettingsError,
    Text,
    default_of,
    describe_settings,
    setting,
)


@dataclasses.dataclass(frozen=True)
class Demo(Settings):
    width: int = setting(8, Integer(low=1, high=64), "units per layer")
    rate: float = setting(0.1, Real(low=0, low_open=True), "learning rate")
    fraction: float = setting(0.5, Real(low=0, high=1), "closed fraction")
    open_fraction: float = setting(0.5, Real(low=0, high=1, low_open=True, high_open=True), "open fraction")
    mode: str = setting("pooled", Choice("pooled", "center"), "what it reads")
    levels: tuple = setting((0.0,), Sequence(Real(low=0, high=1), unique=True), "levels")
    patch: int | None = setting(None, Optional(Integer(low=1)), "patch side or none")
    flag: bool = setting(False, Boolean(), "a switch")
    name: str = setting("x", Text(), "a name")
    table: dict = setting({}, Mapping(), "a table")


def _problem(**values):
    """The single problem ``Demo(**values)`` raises."""
    with pytest.raises(SettingsError) as caught:
        Demo(**values)
    assert len(caught.value.problems) == 1, caught.value.problems
    return caught.value.problems[0]


def test_defaults_pass_and_are_documented():
    demo = Demo()
    assert demo.width == 8 and demo.levels == (0.0,) and demo.patch is None
    rows = {row["name"]: row for row in describe_settings(Demo)}
    assert rows["width"] == {"name": "width", "default": 8, "rule": "an integer in [1, 64]", "doc": "units per layer"}
    assert rows["rate"]["rule"] == "a number > 0"
    assert rows["open_fraction"]["rule"] == "a number in (0, 1)"
    assert rows["fraction"]["rule"] == "a number in [0, 1]"
    assert rows["patch"]["rule"] == "an integer >= 1 or none"
    assert rows["mode"]["rule"] == "one of 'pooled', 'center'"
    assert default_of(Demo, "levels") == (0.0,) and default_of(Demo, "table") == {}
    # a mutable default is fresh in every instance
    assert Demo().table is not Demo().table


def test_settings_error_is_a_brainres_value_error():
    assert issubclass(SettingsError, BrainresError) and issubclass(SettingsError, ValueError)


# ----------------------------------------------------------------- Integer
@pytest.mark.parametrize("value", [1, 64, 8])
def test_integer_within_bounds(value):
    assert Demo(width=value).width == value


@pytest.mark.parametrize(
    "value, words",
    [(0, r"width: expected an integer in \[1, 64\], got 0"), (65, "got 65"), (2.0, "expected an integer, got 2.0"),
     (True, "expected an integer, got True"), ("8", "expected an integer, got '8'")],
)
def test_integer_rejects(value, words):
    assert pytest.raises(SettingsError, Demo, width=value).match(words)


def test_integer_one_sided_bounds():
    assert Integer(low=0).describe() == "an integer >= 0" and Integer(high=3).describe() == "an integer <= 3"
    assert Integer().check(-7) == -7
    with pytest.raises(ValueError, match="<= 3"):
        Integer(high=3).check(4)


# -------------------------------------------------------------------- Real
def test_real_normalises_integers_to_floats():
    demo = Demo(rate=1, fraction=0)
    assert demo.rate == 1.0 and isinstance(demo.rate, float) and isinstance(demo.fraction, float)


@pytest.mark.parametrize(
    "field, value, ok",
    [("rate", 0.0, False), ("rate", 1e-9, True), ("fraction", 0.0, True), ("fraction", 1.0, True),
     ("fraction", 1.0001, False), ("fraction", -0.0001, False), ("open_fraction", 0.0, False),
     ("open_fraction", 1.0, False), ("open_fraction", 0.999, True), ("open_fraction", 0.001, True)],
)
def test_real_open_and_closed_bounds(field, value, ok):
    if ok:
        assert getattr(Demo(**{field: value}), field) == value
    else:
        assert _problem(**{field: value}).startswith(f"{field}: expected a number")


def test_real_bound_messages():
    assert _problem(rate=0.0) == "rate: expected a number > 0, got 0"
    assert _problem(open_fraction=1.0) == "open_fraction: expected a number in (0, 1), got 1"
    assert _problem(fraction=2) == "fraction: expected a number in [0, 1], got 2"
    assert Real(high=1, high_open=True).describe() == "a number < 1"
    assert Real().describe() == "a finite number"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_real_rejects_non_finite_values(value):
    assert "expected a finite number" in _problem(rate=value)
    with pytest.raises(ValueError, match="finite"):
        Real().check(value)  # even without bounds


@pytest.mark.parametrize("value", [True, "0.1", None, [0.1]])
def test_real_rejects_non_numbers(value):
    assert "rate: expected a number, got" in _problem(rate=value)


# ------------------------------------------------------------------ Choice
def test_choice_hints_the_closest_value():
    assert _problem(mode="centre") == "mode: expected one of 'pooled', 'center', got 'centre' (did you mean 'center'?)"
    assert "did you mean" not in _problem(mode="zzz")
    assert Demo(mode="center").mode == "center"


def test_choice_keeps_booleans_and_numbers_apart():
    with pytest.raises(ValueError, match="got True"):
        Choice(1, 2).check(True)
    with pytest.raises(ValueError, match="got 1"):
        Choice(True, False).check(1)
    assert Choice(True, False).check(False) is False and Choice(1, 2).check(2) == 2


# ---------------------------------------------------------------- Sequence
def test_sequence_becomes_a_tuple_of_checked_items():
    demo = Demo(levels=[0, 0.5, 1])
    assert demo.levels == (0.0, 0.5, 1.0) and isinstance(demo.levels, tuple)
    assert all(isinstance(v, float) for v in demo.levels)
    assert demo.to_dict()["levels"] == [0.0, 0.5, 1.0]  # plain lists again for JSON


@pytest.mark.parametrize(
    "value, words",
    [([], "expected a non-empty list of a number in [0, 1]"), ("0.5", "expected a list of"),
     (0.5, "expected a list of"), ([0.0, 2.0], "levels: item 1: expected a number in [0, 1], got 2"),
     ([0.5, 0.5], "expected distinct values, got [0.5, 0.5]")],
)
def test_sequence_rejects(value, words):
    assert words in _problem(levels=value)


def test_sequence_may_allow_empty_and_repeats():
    assert Sequence(Integer(), non_empty=False).check([]) == ()
    assert Sequence(Integer()).check((1, 1)) == (1, 1)


# ---------------------------------------------------------------- Optional
def test_optional_is_none_or_the_rule():
    assert Demo(patch=None).patch is None and Demo(patch=3).patch == 3
    assert _problem(patch=0) == "patch: expected an integer >= 1, got 0"
    assert "expected an integer" in _problem(patch="3")


# ------------------------------------------------------- the other rules
def test_boolean_text_and_mapping():
    assert _problem(flag=1) == "flag: expected true or false, got 1"
    assert _problem(name="  ") == "name: expected a non-empty string, got '  '"
    assert Text(non_empty=False).check("") == ""
    assert "expected a table" in _problem(table={1: 2})
    assert "expected a table" in _problem(table=[("a", 1)])


# --------------------------------------------------- many problems, one error
def test_every_problem_is_listed_at_once():
    with pytest.raises(SettingsError) as caught:
        Demo(width=0, rate=-1, mode="top", levels=[2.0], patch=0.5)
    error = caught.value
    assert [p.split(":")[0] for p in error.problems] == ["width", "rate", "mode", "levels", "patch"]
    message = str(error)
    assert message.startswith("5 problems:\n")
    for problem in error.problems:
        assert f"  - {problem}" in message


def test_from_dict_names_unknown_keys_with_a_suggestion():
    with pytest.raises(SettingsError) as caught:
        Demo.from_dict({"widht": 4, "rat": 0.2, "zzzz": 1}, where="[model.demo]")
    error = caught.value
    assert error.where == "[model.demo]"
    assert len(error.problems) == 3
    keys = "keys: flag, fraction, levels, mode, name, open_fraction, patch, rate, table, width"
    assert error.problems == [f"unknown key 'rat' (did you mean 'rate'?); {keys}",
                              f"unknown key 'widht' (did you mean 'width'?); {keys}",
                              f"unknown key 'zzzz'; {keys}"]
    assert str(error).startswith("[model.demo]: 3 problems:")


def test_from_dict_locates_bad_values_and_normalises_good_ones():
    assert Demo.from_dict({"width": 4, "rate": 1, "levels": [0, 1]}) == Demo(width=4, rate=1.0, levels=(0.0, 1.0))
    with pytest.raises(SettingsError, match=r"^\[model.demo\]: 2 problems:") as caught:
        Demo.from_dict({"width": 0, "mode": "x"}, where="[model.demo]")
    assert caught.value.where == "[model.demo]" and len(caught.value.problems) == 2
    with pytest.raises(SettingsError, match="expected a table of settings"):
        Demo.from_dict([("width", 4)])


def test_from_dict_lists_unknown_keys_and_bad_values_together():
    with pytest.raises(SettingsError) as caught:
        Demo.from_dict({"widht": 4, "rate": -1})
    assert len(caught.value.problems) == 2


def test_located_error_keeps_its_problems():
    error = SettingsError(["a: bad"], "[model.training]")
    moved = error.located("pipeline.toml")
    assert moved.problems == ["a: bad"] and str(moved) == "pipeline.toml [model.training]: a: bad"
    assert str(SettingsError(["a: bad"]).located("here")) == "here: a: bad"


def test_round_trip_replace_and_hash():
    demo = Demo(width=4, levels=(0.25, 0.5))
    assert Demo.from_dict(demo.to_dict()) == demo
    assert demo.config_hash() == Demo.from_dict(demo.to_dict()).config_hash()
    assert demo.config_hash() != Demo(width=5, levels=(0.25, 0.5)).config_hash()
    assert demo.replace(width=6).width == 6
    with pytest.raises(SettingsError, match="width"):
        demo.replace(width=0)  # replacing checks again
    with pytest.raises(dataclasses.FrozenInstanceError):
        demo.width = 3


def test_check_together_sees_the_checked_values():
    @dataclasses.dataclass(frozen=True)
    class Range(Settings):
        low: float = setting(0.0, Real())
        high: float = setting(1.0, Real())

        def check_together(self):
            if self.low >= self.high:
                raise SettingsError([f"low ({self.low:g}) must be below high ({self.high:g})"])

    assert Range(low=0, high=2).high == 2.0
    with pytest.raises(SettingsError, match=r"low \(3\) must be below high \(2\)"):
        Range.from_dict({"low": 3, "high": 2})
