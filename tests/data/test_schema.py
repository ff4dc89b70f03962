import numpy as np
import pytest
import xarray as xr

from brainres import validate
from brainres.errors import SchemaError
from brainres.testing import BUILDERS, human_trials, model_measures, neural_rdms, stimuli


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_valid_examples_pass(kind):
    ds = BUILDERS[kind]()
    assert validate(ds, kind) is ds
    assert validate(ds) is ds  # kind taken from the brainres_kind attribute


def test_unknown_kind_is_named():
    with pytest.raises(SchemaError, match="unknown kind 'trials'"):
        validate(human_trials(), "trials")


def test_not_a_dataset():
    with pytest.raises(SchemaError, match="expected an xarray.Dataset"):
        validate(human_trials()["rt"], "human_trials")


def test_every_violation_is_listed_at_once():
    ds = human_trials()
    ds = ds.drop_vars("response")
    ds["rt"].values[0] = -0.5
    ds.attrs.pop("license")
    ds = ds.drop_vars("condition")
    with pytest.raises(SchemaError) as info:
        validate(ds, "human_trials")
    message = str(info.value)
    assert "missing variable 'response'" in message
    assert "negative values" in message
    assert "missing attribute 'license'" in message
    assert "missing coordinate 'condition'" in message
    assert len(info.value.violations) == 4


@pytest.mark.parametrize(
    "breaker, expected",
    [
        (lambda ds: ds.assign(rt=ds["rt"].assign_attrs(units="ms")), "units='s'"),
        (lambda ds: ds.assign(rt=("trial", np.arange(ds.sizes["trial"]))), "must be float seconds"),
        (lambda ds: ds.assign(rt=ds["rt"].where(ds["trial_index"] != 0, np.inf)), "infinite"),
        (lambda ds: ds.assign(correct=("trial", np.full(ds.sizes["trial"], 2))), "'correct' must be boolean"),
        (lambda ds: ds.assign_coords(trial_index=("trial", np.zeros(ds.sizes["trial"], int))), "duplicate trials"),
        (lambda ds: ds.assign_coords(subject=("trial", np.arange(ds.sizes["trial"]))), "'subject' must hold strings"),
        (lambda ds: ds.assign_attrs(exclusions="none"), "'exclusions' must be a list"),
    ],
)
def test_human_trials_violations(breaker, expected):
    with pytest.raises(SchemaError, match=expected):
        validate(breaker(human_trials()), "human_trials")


def test_stimuli_violations():
    ds = stimuli()
    bad = ds.assign(image=ds["image"].astype(np.float32))
    with pytest.raises(SchemaError, match="must be uint8"):
        validate(bad, "stimuli")
    dup = ds.assign_coords(stimulus_id=["a", "a", "b", "c"])
    with pytest.raises(SchemaError, match="duplicate values: a"):
        validate(dup, "stimuli")
    with pytest.raises(SchemaError, match="missing variable 'category'"):
        validate(ds.drop_vars("category"), "stimuli")
    with pytest.raises(SchemaError, match="expected \\('stimulus_id', 'y', 'x', 'channel'\\)"):
        validate(ds.assign(image=ds["image"].transpose("stimulus_id", "x", "y", "channel")), "stimuli")


def test_rdm_violations():
    ds = neural_rdms()
    asym = ds.copy(deep=True)
    asym["dissimilarity"].values[0, 0, 1] += 1
    with pytest.raises(SchemaError, match="rdm 'r0' is not symmetric"):
        validate(asym, "neural_rdms")
    diag = ds.copy(deep=True)
    diag["dissimilarity"].values[1, 2, 2] = 0.3
    with pytest.raises(SchemaError, match="rdm 'r1' has a non-zero diagonal"):
        validate(diag, "neural_rdms")
    other = ds.assign_coords(stimulus_id_2=[f"x{i}" for i in range(ds.sizes["stimulus_id_2"])])
    with pytest.raises(SchemaError, match="must be identical"):
        validate(other, "neural_rdms")


def test_model_measures_violations():
    ds = model_measures()
    with pytest.raises(SchemaError, match="must sum to 1 over 'step'"):
        validate(ds.assign(halting_probability=ds["halting_probability"] * 2), "model_measures")
    with pytest.raises(SchemaError, match="'step' must be the integers 1..n_steps"):
        validate(ds.assign_coords(step=[0, 1, 2]), "model_measures")
    with pytest.raises(SchemaError, match="missing attribute 'config_hash'"):
        validate(ds.drop_attrs().assign_attrs({k: v for k, v in ds.attrs.items() if k != "config_hash"}),
                 "model_measures")
    with pytest.raises(SchemaError, match="'occlusion' must be fractions"):
        validate(ds.assign_coords(occlusion=[0.0, 50.0]), "model_measures")
    with pytest.raises(SchemaError, match="lacks dimension"):
        validate(ds.assign(expected_halting_step=ds["expected_halting_step"].isel(seed=0, drop=True)),
                 "model_measures")


def test_declared_kind_must_agree():
    with pytest.raises(SchemaError, match="brainres_kind is 'stimuli'"):
        validate(stimuli(), "human_trials")


def test_validate_does_not_modify():
    ds = human_trials()
    before = ds.copy(deep=True)
    validate(ds, "human_trials")
    xr.testing.assert_identical(ds, before)
