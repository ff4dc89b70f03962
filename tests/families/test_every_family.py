"""Checks every registered family passes, the way scikit-learn checks every estimator.

A new family gets these for free by registering one line and declaring a tiny ``example``:
its configuration round-trips and names unknown keys; the same seed gives the same weights;
training resumes from its run folder; its measures validate; its methods text says what ran.
"""

import json

import pytest
import torch

from brainres.data.schema import validate
from brainres.families import family_ids, get_family
from brainres.families.base import ImageFamily, TaskFamily
from brainres.settings import SettingsError

FAMILIES = family_ids()
TASK_FAMILIES = [f for f in FAMILIES if isinstance(get_family(f), TaskFamily)]
IMAGE_FAMILIES = [f for f in FAMILIES if isinstance(get_family(f), ImageFamily)]


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _same_weights(left, right) -> bool:
    a, b = left.state_dict(), right.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_every_family_is_registered_with_a_declaration_and_an_example():
    assert {"lattice", "torch", "elm", "plasticity", "seqpar"} <= set(FAMILIES)
    for family_id in FAMILIES:
        family = get_family(family_id)
        assert family.id == family_id and family.description and family.example


@pytest.mark.parametrize("family_id", TASK_FAMILIES)
def test_task_family_configuration_round_trips_and_names_unknown_keys(family_id):
    family = get_family(family_id)
    config = family.config.from_dict(family.example)
    assert family.config.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert family.config.from_dict(config.to_dict()).config_hash() == config.config_hash()
    first = next(iter(config.to_dict()))
    with pytest.raises(SettingsError, match=f"unknown key '{first}x'.*did you mean '{first}'"):
        family.config.from_dict({**config.to_dict(), f"{first}x": 1})


@pytest.mark.parametrize("family_id", TASK_FAMILIES)
def test_task_family_same_seed_same_weights_and_resumes(family_id, tmp_path):
    family = get_family(family_id)
    config = family.config.from_dict(family.example)
    first, again, other = family.train(config, 0), family.train(config, 0), family.train(config, 1)
    assert _same_weights(first.model, again.model) and not _same_weights(first.model, other.model)
    stopped = family.train(config, 0, run_dir=tmp_path, stop_after_epoch=1)
    assert len(stopped.log) == 1
    resumed = family.train(config, 0, run_dir=tmp_path)
    assert _same_weights(resumed.model, first.model)
    assert _same_weights(family.load(config, tmp_path).model, first.model)


@pytest.mark.parametrize("family_id", TASK_FAMILIES)
def test_task_family_measures_validate_and_methods_say_what_ran(family_id):
    family = get_family(family_id)
    config = family.config.from_dict(family.example)
    measures = family.measure(config, [family.train(config, seed) for seed in (0, 1)])
    validate(measures, "model_measures")
    assert measures.attrs["model_family"] == family_id and list(measures["seed"].values) == [0, 1]
    methods = family.describe(config)
    assert methods and any(str(value) in methods for value in config.to_dict().values() if isinstance(value, int))


@pytest.mark.parametrize("family_id", IMAGE_FAMILIES)
def test_image_family_builds_the_same_network_for_a_seed_and_meets_the_contract(family_id):
    from brainres.models.contract import run_model, seeded

    family = get_family(family_id)
    settings, location = family.settings(family.example, in_channels=1, n_classes=10, folder=None)
    record = {"family": family_id, "settings": settings, "classes": [str(i) for i in range(10)], "in_channels": 1,
              "image_size": 8}

    def build(seed):
        with seeded(seed):
            return family.build(record, seed=seed, location=location)

    assert _same_weights(build(0), build(0)) and not _same_weights(build(0), build(1))
    out = run_model(build(0), torch.rand(2, 1, 8, 8), n_classes=10, latents=True)
    assert out.logits.shape[:1] == (2,) and out.latents
    assert family.describe(record)
    with pytest.raises(Exception, match="unknown key|options"):
        family.settings({**family.example, "not_a_setting": 1}, in_channels=1, n_classes=10, folder=None)
