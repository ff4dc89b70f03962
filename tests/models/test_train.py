import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import xarray as xr

from brainres.families.lattice import LatticeConfig, LatticeNet
from brainres.models.contract import parameter_count
from brainres.models.inputs import InputError
from brainres.models.readouts import entropy_threshold_step
from brainres.settings import SettingsError
from brainres.train import (
    CHECKPOINT,
    CONFIG,
    LOG,
    TrainConfig,
    TrainedRun,
    TrainingError,
    evaluate,
    images_to_tensor,
    import_weights,
    load_trained,
    run_config_hash,
    split_indices,
    stimuli_to_tensors,
    train_model,
)

TINY_MODEL = LatticeConfig(max_channels=6, max_layers=2, max_steps=4, lambda_time=0.01, lambda_breadth=0.01)
CLASSES = [str(i) for i in range(10)]
LOG_COLUMNS = ["epoch", "train_loss", "train_task_loss", "train_cost", "train_accuracy", "held_out_accuracy",
               "held_out_final_step_accuracy", "held_out_mean_steps"]


def tiny_config(**changes):
    values = dict(seed=0, epochs=3, batch_size=32, learning_rate=0.01, occlusion_levels=(0.0, 0.5))
    return TrainConfig(**{**values, **changes})


def lattice_record(lattice=TINY_MODEL):
    return {"family": "lattice", "settings": lattice.to_dict(), "classes": CLASSES[: lattice.n_classes],
            "in_channels": lattice.in_channels, "image_size": None}


def train_tiny(images, labels, config, *, lattice=TINY_MODEL, **options):
    """Train a lattice the way a pipeline does: built by a function, with its family record."""
    return train_model(lambda: LatticeNet(lattice), images, labels, config, n_classes=lattice.n_classes,
                       record=lattice_record(lattice), **options)


class TwoStepConvNet(torch.nn.Module):
    """A user's recurrent conv net without halting: two steps of per-step logits, no cost."""

    def __init__(self, channels=8, n_classes=10):
        super().__init__()
        self.encode = torch.nn.Conv2d(1, channels, 3, padding=1)
        self.lateral = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.readout = torch.nn.Linear(channels * 4, n_classes)

    def forward(self, images):
        drive = self.encode(images)
        first = F.relu(drive)
        second = F.relu(drive + self.lateral(first))
        logits = [self.readout(F.adaptive_avg_pool2d(state, 2).flatten(1)) for state in (first, second)]
        return {"logits": torch.stack(logits, dim=1), "latents": {"conv": torch.stack([first, second], dim=1)}}


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


def _same_checkpoints(left_dir, right_dir):
    left = torch.load(left_dir / CHECKPOINT, weights_only=True)
    right = torch.load(right_dir / CHECKPOINT, weights_only=True)
    assert left["epoch"] == right["epoch"]
    assert torch.equal(left["generator"], right["generator"])
    assert torch.equal(left["torch_rng"], right["torch_rng"])
    # Adam's moment estimates must match too, or the next epoch would differ.
    assert left["optimizer"]["state"].keys() == right["optimizer"]["state"].keys()
    for key, state in left["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, right["optimizer"]["state"][key][name]), (key, name)


def test_resume_after_interruption_is_bitwise_equal(tmp_path, small_digits):
    images, labels = small_digits
    straight = train_tiny(images, labels, tiny_config(), run_dir=tmp_path / "straight")
    interrupted = train_tiny(images, labels, tiny_config(), run_dir=tmp_path / "resumed", stop_after_epoch=1)
    assert len(interrupted.log) == 1
    resumed = train_tiny(images, labels, tiny_config(), run_dir=tmp_path / "resumed")
    _same_state(straight.model.state_dict(), resumed.model.state_dict())
    _same_log(straight.log, resumed.log)
    _same_checkpoints(tmp_path / "straight", tmp_path / "resumed")
    _same_log(pd.read_csv(tmp_path / "straight" / LOG), pd.read_csv(tmp_path / "resumed" / LOG))


def test_mirrored_shifted_cosine_training_resumes_bitwise_and_keeps_epoch_weights(tmp_path, small_digits):
    images, labels = small_digits
    config = tiny_config(epochs=3, horizontal_flip=0.5, max_shift=2, learning_rate_schedule="cosine")
    straight = train_tiny(images, labels, config, run_dir=tmp_path / "straight", keep_epochs=(1, 2))
    train_tiny(images, labels, config, run_dir=tmp_path / "resumed", keep_epochs=(1, 2), stop_after_epoch=2)
    resumed = train_tiny(images, labels, config, run_dir=tmp_path / "resumed", keep_epochs=(1, 2))
    _same_state(straight.model.state_dict(), resumed.model.state_dict())
    # the weights kept after epoch 1 and 2 are those of that moment: the same in both runs, not the last ones
    for epoch in (1, 2):
        kept = load_trained(tmp_path / "straight", epoch=epoch).model.state_dict()
        _same_state(kept, load_trained(tmp_path / "resumed", epoch=epoch).model.state_dict())
        assert not all(torch.equal(kept[k], straight.model.state_dict()[k]) for k in kept)
    with pytest.raises(TrainingError, match="kept no weights at epoch 3"):
        load_trained(tmp_path / "straight", epoch=3)
    # augmentation changes what the model saw; without it the weights differ
    plain = train_tiny(images, labels, tiny_config(epochs=3, learning_rate_schedule="cosine"))
    assert not all(torch.equal(v, plain.model.state_dict()[k]) for k, v in straight.model.state_dict().items())


def test_rerunning_a_finished_run_changes_nothing(tmp_path, small_digits):
    images, labels = small_digits
    first = train_tiny(images, labels, tiny_config(epochs=1), run_dir=tmp_path)
    again = train_tiny(images, labels, tiny_config(epochs=1), run_dir=tmp_path)
    _same_state(first.model.state_dict(), again.model.state_dict())
    assert len(again.log) == 1


def test_same_seed_same_weights_other_seed_other_weights(small_digits):
    images, labels = small_digits
    a = train_tiny(images, labels, tiny_config(epochs=1))
    b = train_tiny(images, labels, tiny_config(epochs=1))
    c = train_tiny(images, labels, tiny_config(epochs=1, seed=1))
    _same_state(a.model.state_dict(), b.model.state_dict())
    assert not torch.equal(a.model.stem.weight, c.model.stem.weight)
    # build() runs under the training seed: the model starts as LatticeNet(config, seed=seed) would
    untrained = train_tiny(images, labels, tiny_config(epochs=1, seed=1), stop_after_epoch=0).model
    _same_state(untrained.state_dict(), LatticeNet(TINY_MODEL, seed=1).state_dict())


def test_run_folder_of_another_config_is_refused(tmp_path, small_digits):
    images, labels = small_digits
    train_tiny(images, labels, tiny_config(epochs=1), run_dir=tmp_path)
    with pytest.raises(TrainingError, match="another configuration"):
        train_tiny(images, labels, tiny_config(epochs=1, learning_rate=0.02), run_dir=tmp_path)
    with pytest.raises(TrainingError, match="another configuration"):  # another model, same training
        train_tiny(images, labels, tiny_config(epochs=1), run_dir=tmp_path, lattice=TINY_MODEL.replace(lambda_time=0.1))


def test_log_and_files(tmp_path, small_digits):
    images, labels = small_digits
    config = tiny_config(epochs=2)
    result = train_tiny(images, labels, config, run_dir=tmp_path, location={"where": "test"})
    on_disk = pd.read_csv(tmp_path / LOG)
    assert on_disk["epoch"].tolist() == [1, 2]
    summary_columns = ["active_channels_layer_0", "active_channels_layer_1", "depth_gate_layer_0", "depth_gate_layer_1",
                       "effective_depth", "open_layers", "active_breadth", "cost_breadth", "cost_depth"]
    assert list(on_disk.columns) == LOG_COLUMNS + summary_columns + ["seconds"]
    _same_log(on_disk, result.log)
    # the loss is the task loss plus the model's cost, averaged alike over the epoch
    np.testing.assert_allclose(on_disk["train_loss"], on_disk["train_task_loss"] + on_disk["train_cost"], rtol=1e-6)
    assert (on_disk["train_cost"] > 0).all()
    assert on_disk["held_out_mean_steps"].between(1, TINY_MODEL.max_steps).all()
    assert result.log.iloc[-1]["active_channels_layer_1"] == result.model.resource_summary()["active_channels"][1]
    stored = json.loads((tmp_path / CONFIG).read_text())
    assert set(stored) == {"config_hash", "model", "training", "location", "n_parameters"}
    assert stored["config_hash"] == run_config_hash(lattice_record(), config)
    assert stored["model"] == lattice_record() and stored["training"] == config.to_dict()
    assert stored["location"] == {"where": "test"}
    assert stored["n_parameters"] == parameter_count(result.model)
    assert result.has_halting and result.run_dir == tmp_path
    reloaded = load_trained(tmp_path)
    assert isinstance(reloaded, TrainedRun) and isinstance(reloaded.model, LatticeNet)
    _same_state(reloaded.model.state_dict(), result.model.state_dict())
    assert not reloaded.model.training
    assert reloaded.record == lattice_record() and reloaded.training == config
    assert reloaded.seed == 0 and reloaded.run_dir == tmp_path
    assert reloaded.n_parameters == parameter_count(result.model)


def test_load_trained_names_what_is_missing(tmp_path):
    with pytest.raises(TrainingError, match="config.json is missing"):
        load_trained(tmp_path)


def test_training_learns_and_halting_depends_on_the_stimulus(digits_tensors):
    images, labels = digits_tensors
    images, labels = images[:1000], labels[:1000]
    lattice = LatticeConfig(max_channels=8, max_layers=2, max_steps=4, lambda_time=0.02)
    result = train_tiny(images, labels, tiny_config(epochs=8), lattice=lattice)
    held = evaluate(result.model, images[result.held_out_index], labels[result.held_out_index],
                    stimulus_index=result.held_out_index)
    assert list(held.columns) == ["stimulus_index", "occlusion", "label", "predicted", "correct", "halting_step",
                                  "final_step_correct", "expected_halting_step"]
    assert held["stimulus_index"].tolist() == result.held_out_index.tolist()
    assert held["correct"].mean() > 0.5  # chance is 0.1
    assert held["correct"].mean() == pytest.approx(result.log.iloc[-1]["held_out_accuracy"])
    # Halting is per stimulus: expected steps differ across held-out stimuli.
    assert held["expected_halting_step"].std() > 0.01
    occluded = evaluate(result.model, images[result.held_out_index], labels[result.held_out_index],
                        stimulus_index=result.held_out_index, occlusion_level=0.5)
    assert (occluded["occlusion"] == 0.5).all()
    assert not np.allclose(occluded["expected_halting_step"], held["expected_halting_step"])


def test_user_module_without_halting_trains_resumes_and_reloads(tmp_path, digits_tensors):
    images, labels = digits_tensors
    images, labels = images[:600], labels[:600]
    config = tiny_config(epochs=5, learning_rate=0.02, occlusion_levels=(0.0, 0.25))
    straight = train_model(TwoStepConvNet, images, labels, config, n_classes=10, run_dir=tmp_path / "straight")
    first = train_model(TwoStepConvNet, images, labels, config, n_classes=10, run_dir=tmp_path / "resumed",
                        stop_after_epoch=2)
    assert len(first.log) == 2
    resumed = train_model(TwoStepConvNet, images, labels, config, n_classes=10, run_dir=tmp_path / "resumed")
    _same_state(straight.model.state_dict(), resumed.model.state_dict())
    _same_log(straight.log, resumed.log)
    _same_checkpoints(tmp_path / "straight", tmp_path / "resumed")

    log = straight.log
    assert list(log.columns) == LOG_COLUMNS + ["seconds"]  # no resource summary, so no summary columns
    assert (log["train_cost"] == 0).all()  # no cost: the loss is the task loss
    np.testing.assert_allclose(log["train_loss"], log["train_task_loss"])
    assert log["held_out_mean_steps"].between(1, 2).all()  # entropy-threshold step of a 2-step model
    assert log["held_out_accuracy"].iloc[-1] > 0.4  # chance is 0.1
    assert not straight.has_halting

    # Without a family record the run folder records the module's class and parameter shapes
    stored = json.loads((tmp_path / "straight" / CONFIG).read_text())
    assert stored["model"]["class"].endswith("TwoStepConvNet")
    assert stored["model"]["parameters"]["readout.weight"] == [10, 32]
    with pytest.raises(TrainingError, match="pass build="):
        load_trained(tmp_path / "straight")
    reloaded = load_trained(tmp_path / "straight", build=TwoStepConvNet)
    _same_state(reloaded.model.state_dict(), straight.model.state_dict())
    assert reloaded.record == stored["model"] and reloaded.training == config

    held_out = straight.held_out_index
    held = evaluate(straight.model, images[held_out], labels[held_out], stimulus_index=held_out)
    assert "expected_halting_step" not in held
    with torch.no_grad():
        logits = straight.model(images[held_out])["logits"].numpy()
    expected_step = entropy_threshold_step(logits, threshold=0.5)
    assert held["halting_step"].tolist() == expected_step.astype(int).tolist()
    picked = logits[np.arange(len(held_out)), expected_step.astype(int) - 1].argmax(axis=1)
    assert held["predicted"].tolist() == picked.tolist()
    assert held["final_step_correct"].tolist() == (logits[:, -1].argmax(axis=1) == labels[held_out].numpy()).tolist()
    assert held["correct"].mean() == pytest.approx(log["held_out_accuracy"].iloc[-1])


def test_import_weights_makes_a_run_folder_that_loads_like_a_trained_one(tmp_path, small_digits):
    images, labels = small_digits
    trained = train_tiny(images, labels, tiny_config(epochs=1)).model
    weights = tmp_path / "weights.pt"
    torch.save(trained.state_dict(), weights)
    run_dir = tmp_path / "imported"
    run_dir.mkdir()
    import_weights(run_dir, LatticeNet(TINY_MODEL), record=lattice_record(), location={}, seed=4, device="cpu",
                   weights=weights, weights_sha256="0" * 64)
    loaded = load_trained(run_dir)
    _same_state(loaded.model.state_dict(), trained.state_dict())
    assert loaded.seed == 4 and loaded.record == lattice_record()
    assert json.loads((run_dir / CONFIG).read_text())["weights"]["sha256"] == "0" * 64


def test_config_round_trip_and_validation():
    config = tiny_config()
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert TrainConfig.from_dict(config.to_dict()).config_hash() == config.config_hash()
    assert TrainConfig().occlusion_levels == (0.0,)
    assert set(TrainConfig().to_dict()) == {"seed", "epochs", "batch_size", "learning_rate", "held_out_fraction",
                                            "split_seed", "occlusion_levels", "edge_maps", "patch_size", "step_loss_weight",
                                            "num_threads", "device", "horizontal_flip", "max_shift",
                                            "learning_rate_schedule"}
    with pytest.raises(SettingsError, match="held_out_fraction"):
        tiny_config(held_out_fraction=1.0)
    with pytest.raises(SettingsError, match="occlusion_levels"):
        tiny_config(occlusion_levels=(0.0, 2.0))
    with pytest.raises(SettingsError, match="device"):
        tiny_config(device="gpu")
    with pytest.raises(SettingsError, match="unknown key 'model'"):
        TrainConfig.from_dict({**config.to_dict(), "model": TINY_MODEL.to_dict()})
    with pytest.raises(SettingsError, match=r"2 problems:[\s\S]*epochs[\s\S]*learning_rate"):
        tiny_config(epochs=0, learning_rate=0.0)


def test_run_hash_covers_the_model_record_and_the_training():
    config = tiny_config()
    base = run_config_hash(lattice_record(), config)
    assert base == run_config_hash(json.loads(json.dumps(lattice_record())), TrainConfig.from_dict(config.to_dict()))
    assert base != run_config_hash(lattice_record(TINY_MODEL.replace(lambda_time=0.1)), config)
    assert base != run_config_hash(lattice_record(), tiny_config(seed=1))
    assert base != run_config_hash(lattice_record(), tiny_config(step_loss_weight=0.25))


def test_bad_inputs_are_named(small_digits):
    images, labels = small_digits
    with pytest.raises(TrainingError, match="labels must lie in 0..9"):
        train_tiny(images, labels + 5, tiny_config())
    with pytest.raises(TrainingError, match="channels"):
        train_tiny(images.repeat(1, 3, 1, 1), labels, tiny_config())
    with pytest.raises(TrainingError, match="labels has shape"):
        train_tiny(images, labels[:-1], tiny_config())
    with pytest.raises(TrainingError, match="float tensor"):
        train_tiny((images * 255).to(torch.uint8), labels, tiny_config())
    with pytest.raises(TrainingError, match="must be a TrainConfig"):
        train_tiny(images, labels, tiny_config().to_dict())
    with pytest.raises(TrainingError, match="must return a torch.nn.Module"):
        train_model(lambda: (lambda x: x), images, labels, tiny_config(), n_classes=10)
    with pytest.raises(InputError, match="uint8"):
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
