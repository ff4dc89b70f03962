import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from brainres.models.lattice import LatticeConfig
from brainres.train import (
    CHECKPOINT,
    LOG,
    TrainConfig,
    TrainingError,
    evaluate,
    images_to_tensor,
    load_trained,
    run_name,
    split_indices,
    stimuli_to_tensors,
    train_lattice,
    train_many,
)

TINY_MODEL = LatticeConfig(max_channels=6, max_layers=2, max_steps=4, lambda_time=0.01, lambda_breadth=0.01)


def tiny_config(**changes):
    values = dict(model=TINY_MODEL, seed=0, epochs=3, batch_size=32, learning_rate=0.01, occlusion_levels=(0.0, 0.5))
    return TrainConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def small_digits(digits_tensors):
    images, labels = digits_tensors
    return images[:200], labels[:200]


def _same_state(left, right):
    assert left.keys() == right.keys()
    for name in left:
        assert torch.equal(left[name], right[name]), name


def _same_log(left, right):
    pd.testing.assert_frame_equal(left.drop(columns="seconds"), right.drop(columns="seconds"))


def test_resume_after_interruption_is_bitwise_equal(tmp_path, small_digits):
    images, labels = small_digits
    straight = train_lattice(images, labels, tiny_config(), run_dir=tmp_path / "straight")
    interrupted = train_lattice(images, labels, tiny_config(), run_dir=tmp_path / "resumed", stop_after_epoch=1)
    assert len(interrupted.log) == 1
    resumed = train_lattice(images, labels, tiny_config(), run_dir=tmp_path / "resumed")
    _same_state(straight.model.state_dict(), resumed.model.state_dict())
    _same_log(straight.log, resumed.log)
    saved_straight = torch.load(tmp_path / "straight" / CHECKPOINT, weights_only=True)
    saved_resumed = torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=True)
    assert torch.equal(saved_straight["generator"], saved_resumed["generator"])
    # Adam's moment estimates must match too, or the next epoch would differ.
    for key, state in saved_straight["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, saved_resumed["optimizer"]["state"][key][name]), (key, name)


def test_rerunning_a_finished_run_changes_nothing(tmp_path, small_digits):
    images, labels = small_digits
    first = train_lattice(images, labels, tiny_config(epochs=1), run_dir=tmp_path)
    again = train_lattice(images, labels, tiny_config(epochs=1), run_dir=tmp_path)
    _same_state(first.model.state_dict(), again.model.state_dict())
    assert len(again.log) == 1


def test_same_seed_same_weights_other_seed_other_weights(small_digits):
    images, labels = small_digits
    a = train_lattice(images, labels, tiny_config(epochs=1))
    b = train_lattice(images, labels, tiny_config(epochs=1))
    c = train_lattice(images, labels, tiny_config(epochs=1, seed=1))
    _same_state(a.model.state_dict(), b.model.state_dict())
    assert not torch.equal(a.model.stem.weight, c.model.stem.weight)


def test_run_folder_of_another_config_is_refused(tmp_path, small_digits):
    images, labels = small_digits
    train_lattice(images, labels, tiny_config(epochs=1), run_dir=tmp_path)
    with pytest.raises(TrainingError, match="another configuration"):
        train_lattice(images, labels, tiny_config(epochs=1, learning_rate=0.02), run_dir=tmp_path)


def test_log_and_files(tmp_path, small_digits):
    images, labels = small_digits
    result = train_lattice(images, labels, tiny_config(epochs=2), run_dir=tmp_path)
    on_disk = pd.read_csv(tmp_path / LOG)
    assert on_disk["epoch"].tolist() == [1, 2]
    for column in ("train_accuracy", "held_out_accuracy", "held_out_mean_steps", "active_breadth",
                   "effective_depth", "active_channels_layer_0", "active_channels_layer_1"):
        assert column in on_disk
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["config_hash"] == tiny_config(epochs=2).config_hash()
    reloaded = load_trained(tmp_path)
    _same_state(reloaded.state_dict(), result.model.state_dict())


def test_training_learns_and_halting_depends_on_the_stimulus(digits_tensors):
    images, labels = digits_tensors
    images, labels = images[:1000], labels[:1000]
    config = tiny_config(epochs=8, model=LatticeConfig(max_channels=8, max_layers=2, max_steps=4, lambda_time=0.02))
    result = train_lattice(images, labels, config)
    held = evaluate(result.model, images[result.held_out_index], labels[result.held_out_index])
    assert held["correct"].mean() > 0.5  # chance is 0.1
    # Halting is per stimulus: expected steps differ across held-out stimuli.
    assert held["expected_halting_step"].std() > 0.01


def test_config_round_trip_and_validation():
    config = tiny_config()
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert TrainConfig.from_dict(config.to_dict()).config_hash() == config.config_hash()
    with pytest.raises(Exception, match="held_out_fraction"):
        tiny_config(held_out_fraction=1.0)
    with pytest.raises(Exception, match="occlusion_levels"):
        tiny_config(occlusion_levels=(0.0, 2.0))


def test_bad_inputs_are_named(small_digits):
    images, labels = small_digits
    with pytest.raises(TrainingError, match="labels must lie in 0..9"):
        train_lattice(images, labels + 5, tiny_config())
    with pytest.raises(TrainingError, match="channels"):
        train_lattice(images.repeat(1, 3, 1, 1), labels, tiny_config())
    with pytest.raises(TrainingError, match="uint8"):
        images_to_tensor(np.zeros((2, 8, 8, 1), dtype=float))


def test_split_is_seeded_and_disjoint():
    train, held = split_indices(100, held_out_fraction=0.2, seed=0)
    again, _ = split_indices(100, held_out_fraction=0.2, seed=0)
    other, _ = split_indices(100, held_out_fraction=0.2, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    assert len(held) == 20 and not set(train) & set(held)


def _stimuli(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {"image": (("stimulus_id", "y", "x", "channel"), rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8)),
         "label": ("stimulus_id", np.arange(n) % 3),
         "category": ("stimulus_id", np.array([f"c{i % 3}" for i in range(n)]))},
        coords={"stimulus_id": [f"s{i:03d}" for i in range(n)]},
    )


def test_stimuli_to_tensors_keeps_and_renumbers_classes():
    images, labels, ids = stimuli_to_tensors(_stimuli(), classes=[2, 0])
    assert images.shape == (40, 1, 8, 8) and images.dtype == torch.float32
    assert float(images.max()) <= 1.0
    assert set(labels.tolist()) == {0, 1}
    assert ids[0] == "s000" and labels[0] == 1  # label 0 became 1
    with pytest.raises(TrainingError, match=r"classes \[7\]"):
        stimuli_to_tensors(_stimuli(), classes=[7])


def test_train_many_trains_each_config_in_its_own_folder(tmp_path, small_digits):
    images, labels = small_digits
    configs = [tiny_config(epochs=1, seed=s) for s in (0, 1)]
    summary = train_many(images, labels, configs, root_dir=tmp_path)
    assert summary["seed"].tolist() == [0, 1]
    for config in configs:
        assert (tmp_path / run_name(config) / CHECKPOINT).exists()


def test_cli_trains_the_grid(tmp_path, monkeypatch, capsys):
    import argparse

    import brainres
    from brainres.commands import train as train_command

    monkeypatch.setattr(brainres, "load_stimuli", lambda dataset_id: _stimuli(), raising=False)
    parser = argparse.ArgumentParser(prog="brainres")
    train_command.register(parser.add_subparsers())
    args = parser.parse_args(["train", "--dataset", "digits", "--seeds", "0", "1", "--lambda-time", "0", "0.1",
                              "--epochs", "1", "--max-channels", "4", "--max-layers", "1", "--max-steps", "2",
                              "--out", str(tmp_path), "--quiet"])
    assert args.func(args) == 0
    assert len(list(tmp_path.glob("*/checkpoint.pt"))) == 4
    printed = capsys.readouterr().out
    assert "held_out_accuracy" in printed and "lambda_time" in printed
