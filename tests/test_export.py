import numpy as np
import pytest
import torch
import torch.nn.functional as F
import xarray as xr

import brainres
from brainres.data.io import read_netcdf
from brainres.export import ExportError, export_models
from brainres.families.lattice import FixedStepRecurrentNet, LatticeConfig, LatticeNet
from brainres.models import readouts
from brainres.models.contract import parameter_count, run_model
from brainres.models.inputs import InputError, prepare_images

CLASSES = [str(i) for i in range(10)]
LATTICE = LatticeConfig(in_channels=1, n_classes=10, max_channels=6, max_layers=2, max_steps=4, lambda_time=0.01)
RECORD = {"family": "lattice", "settings": LATTICE.to_dict(), "classes": CLASSES, "in_channels": 1,
          "image_size": None}


@pytest.fixture(scope="module")
def digits():
    return brainres.load_stimuli("digits").isel(stimulus_id=slice(0, 37))


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    return {seed: LatticeNet(LATTICE, seed=seed).eval() for seed in (3, 1)}


def run(models, digits, path, **options):
    options = {"classes": CLASSES, "in_channels": 1, "record": RECORD, "training_data": "test",
               "pressures": LATTICE.pressures, "occlusion_levels": [0.0, 0.5]} | options
    return read_netcdf(export_models(models, digits, path, **options))


def _images(digits):
    return prepare_images(digits["image"].values, in_channels=1, image_size=None)


def test_export_matches_the_model_and_the_readouts(models, digits, tmp_path):
    ds = run(models, digits, tmp_path / "e.nc", latents=True, batch_size=16)
    assert ds.attrs["brainres_kind"] == "model_measures" and ds.attrs["model_family"] == "lattice"
    assert ds.attrs["pressures"] == {"lambda_breadth": 0.0, "lambda_depth": 0.0, "lambda_time": 0.01}
    assert ds.attrs["readouts"] == ["expected_halting_step", "median_halting_step", "entropy_threshold_step",
                                    "uncertainty_auc"]
    assert "median halting step" in ds.attrs["halting_step_readout"]
    assert list(ds["seed"].values) == [1, 3]
    assert list(ds["stimulus_id"].values) == list(digits["stimulus_id"].values)  # order kept
    np.testing.assert_allclose(ds["halting_probability"].sum("step"), 1, atol=1e-6)
    images = _images(digits)
    with torch.no_grad():
        direct = models[3](images)
        pooled = run_model(models[3], images, latents=True).latents
    clean = ds.sel(seed=3, occlusion=0.0)
    probability = direct["halting_probability"].numpy()
    np.testing.assert_allclose(clean["halting_probability"], probability, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(clean["expected_halting_step"],
                               readouts.expected_halting_step(probability.astype(float)), rtol=1e-5)
    np.testing.assert_array_equal(clean["median_halting_step"],
                                  readouts.median_halting_step(probability.astype(float)))
    np.testing.assert_allclose(clean["uncertainty_auc"], readouts.uncertainty_auc(direct["logits"].numpy()), rtol=1e-5)
    np.testing.assert_array_equal(clean["predicted_class"], direct["logits"].numpy().argmax(2))
    # the answer is given at the median halting step
    median = clean["median_halting_step"].values.astype(int)
    np.testing.assert_array_equal(clean["halted_class"],
                                  clean["predicted_class"].values[np.arange(len(median)), median - 1])
    # latents: one variable, each layer's channels along 'feature', averaged over space
    assert ds["latent"].dims == ("seed", "stimulus_id", "occlusion", "step", "feature")
    assert ds["feature_layer"].values.tolist() == ["layer_0"] * 6 + ["layer_1"] * 6
    assert ds["feature_unit"].values.tolist() == list(range(6)) * 2
    layer_1 = clean["latent"].sel(feature=clean["feature_layer"] == "layer_1")
    np.testing.assert_allclose(layer_1, direct["latents"]["layer_1"].numpy().mean(axis=(3, 4)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer_1, pooled["layer_1"].numpy(), rtol=1e-5, atol=1e-6)
    expected_accuracy = clean["halted_correct"].mean().item()
    assert ds["accuracy"].sel(seed=3, occlusion=0.0).item() == pytest.approx(expected_accuracy)
    assert ds["mean_expected_halting_step"].sel(seed=3, occlusion=0.0).item() == pytest.approx(
        float(clean["expected_halting_step"].mean()), rel=1e-5)
    # per seed: parameters and the resource summary, per-layer values along 'layer'
    assert ds["n_parameters"].sel(seed=3).item() == parameter_count(models[3])
    summary = models[3].resource_summary()
    assert ds["active_channels"].dims == ("seed", "layer") and ds["depth_gate"].dims == ("seed", "layer")
    np.testing.assert_allclose(ds["active_channels"].sel(seed=3), summary["active_channels"])
    np.testing.assert_allclose(ds["depth_gate"].sel(seed=3), summary["depth_gate"], rtol=1e-6)
    for name in ("effective_depth", "open_layers", "active_breadth", "cost_breadth", "cost_depth"):
        assert ds[name].dims == ("seed",)
        assert ds[name].sel(seed=3).item() == pytest.approx(summary[name], rel=1e-6), name
    # occlusion changes what the model sees
    assert not np.allclose(ds["entropy"].sel(occlusion=0.0), ds["entropy"].sel(occlusion=0.5))


def test_chunking_and_reruns_do_not_change_numbers(models, digits, tmp_path):
    small = run(models, digits, tmp_path / "a.nc", batch_size=5)
    large = run(models, digits, tmp_path / "b.nc", batch_size=64)
    again = run(models, digits, tmp_path / "c.nc", batch_size=5)
    xr.testing.assert_allclose(small, large, rtol=1e-5)
    xr.testing.assert_identical(small, again)


def test_unknown_categories_are_an_error_and_write_nothing(models, digits, tmp_path):
    with pytest.raises(InputError, match=r"not trained on: \['9'\]"):
        export_models(models, digits, tmp_path / "x.nc", classes=CLASSES[:9], in_channels=1, training_data="t")
    assert list(tmp_path.iterdir()) == []


def test_models_of_one_export_share_a_structure(digits, tmp_path):
    a = LatticeNet(LatticeConfig(in_channels=1, max_steps=3), seed=0)
    b = LatticeNet(LatticeConfig(in_channels=1, max_steps=4), seed=1)
    with pytest.raises(ExportError, match="same structure"):
        export_models({0: a, 1: b}, digits, tmp_path / "x.nc", classes=CLASSES, in_channels=1)
    with pytest.raises(ExportError, match="distinct fractions"):
        export_models({0: a}, digits, tmp_path / "x.nc", classes=CLASSES, in_channels=1, occlusion_levels=[0, 1.5])
    with pytest.raises(ExportError, match="seed 0: .*logits for 10 classes, but its classes list has 9"):
        export_models({0: a}, digits.isel(stimulus_id=slice(0, 9)), tmp_path / "x.nc", classes=CLASSES[:9],
                      in_channels=1)
    with pytest.raises(ExportError, match="no models"):
        export_models({}, digits, tmp_path / "x.nc", classes=CLASSES, in_channels=1)
    assert list(tmp_path.iterdir()) == []


def test_prepare_images_converts_channels_and_size():
    rgb = np.zeros((2, 10, 10, 3), np.uint8)
    rgb[..., 0] = 255
    grey = prepare_images(rgb, in_channels=1, image_size=5)
    assert grey.shape == (2, 1, 5, 5)
    np.testing.assert_allclose(grey.numpy(), 0.299, atol=1e-6)
    colour = prepare_images(np.full((1, 4, 4, 1), 51, np.uint8), in_channels=3, image_size=None)
    assert colour.shape == (1, 3, 4, 4) and torch.allclose(colour, torch.tensor(0.2))
    with pytest.raises(InputError, match="2-channel"):
        prepare_images(np.zeros((1, 4, 4, 2), np.uint8), in_channels=1, image_size=None)


def test_foreign_stimuli_can_be_exported_unscored(digits, tmp_path):
    nine = LATTICE.replace(n_classes=9)
    models = {0: LatticeNet(nine, seed=0).eval()}
    record = {**RECORD, "settings": nine.to_dict(), "classes": CLASSES[:9]}
    ds = run(models, digits, tmp_path / "u.nc", classes=CLASSES[:9], record=record, unknown_classes="unscored",
             latents=True)
    nines = ds["category"].values == "9"
    assert nines.any() and (ds["target_class"].values[nines] == -1).all() and ds.attrs["n_unscored"] == nines.sum()
    assert not ds["halted_correct"].values[:, nines].any()
    assert not ds["correct"].values[:, nines].any()
    assert list(ds["class_name"].values) == CLASSES[:9]


class TwoLayerNet(torch.nn.Module):
    """A user's 2-step conv net without halting; its two latent layers have 3 and 5 channels.

    Step 1 reads the early layer, step 2 the late one; brighter images give surer readouts.
    """

    def __init__(self, seed=None):
        super().__init__()
        with torch.random.fork_rng():
            if seed is not None:
                torch.manual_seed(seed)
            self.early = torch.nn.Conv2d(1, 3, 3, padding=1)
            self.late = torch.nn.Conv2d(3, 5, 3, padding=1)
            self.lateral = torch.nn.Conv2d(5, 5, 3, padding=1, bias=False)
            self.read_early = torch.nn.Linear(3, 10)
            self.read_late = torch.nn.Linear(5, 10)

    def forward(self, images):
        early = F.relu(self.early(images))
        first = F.relu(self.late(early))
        second = F.relu(self.late(early) + self.lateral(first))
        brightness = 30 * images.mean(dim=(1, 2, 3))[:, None]
        logits = torch.stack([self.read_early(early.mean(dim=(2, 3))) * brightness,
                              self.read_late(second.mean(dim=(2, 3))) * 2 * brightness], dim=1)
        return {"logits": logits,
                "latents": {"early": torch.stack([early, early], dim=1), "late": torch.stack([first, second], dim=1)}}

    def resource_summary(self):
        return {"channels": [3, 5], "weight_norm": float(self.late.weight.detach().norm())}


def test_user_model_without_halting(digits, tmp_path):
    models = {seed: TwoLayerNet(seed).eval() for seed in (0, 1)}
    images = _images(digits)
    with torch.no_grad():
        first_step = readouts.step_entropy(models[0](images)["logits"].numpy())[:, 0]
    threshold = float(np.round(np.median(first_step), 3))  # about half the stimuli answer at step 1 (seed 0)
    ds = run(models, digits, tmp_path / "user.nc", record={"classes": CLASSES}, pressures=None, latents=True,
             batch_size=10, entropy_threshold=threshold)
    assert ds.attrs["model_family"] == "torch" and ds.attrs["pressures"] == {}
    for name in ("halting_probability", "expected_halting_step", "median_halting_step", "mean_expected_halting_step"):
        assert name not in ds, name
    assert ds.attrs["readouts"] == ["entropy_threshold_step", "uncertainty_auc"]
    assert "entropy-threshold step" in ds.attrs["halting_step_readout"]
    assert ds.attrs["entropy_threshold"] == threshold
    for seed, model in models.items():
        clean = ds.sel(seed=seed, occlusion=0.0)
        with torch.no_grad():
            direct = model(images)
        logits = direct["logits"].numpy()
        np.testing.assert_array_equal(clean["predicted_class"], logits.argmax(2))
        step = readouts.entropy_threshold_step(logits, threshold=threshold)
        np.testing.assert_array_equal(clean["entropy_threshold_step"], step)
        if seed == 0:
            assert set(step.tolist()) == {1.0, 2.0}  # both steps answer, for some stimuli each
        # the answer is the prediction at the entropy-threshold step
        answered = clean["predicted_class"].values[np.arange(step.size), step.astype(int) - 1]
        np.testing.assert_array_equal(clean["halted_class"], answered)
        if seed == 0:  # not simply the last step's prediction
            assert (clean["halted_class"] != clean["predicted_class"].sel(step=2)).any()
        np.testing.assert_array_equal(clean["halted_correct"], answered == clean["target_class"].values)
        accuracy = float(clean["halted_correct"].mean())
        assert ds["accuracy"].sel(seed=seed, occlusion=0.0).item() == pytest.approx(accuracy)
        assert ds["mean_entropy_threshold_step"].sel(seed=seed, occlusion=0.0).item() == pytest.approx(step.mean())
        # latents of both layers, each at its own width, equal the model's maps averaged over space
        assert ds["feature_layer"].values.tolist() == ["early"] * 3 + ["late"] * 5
        assert ds["feature_unit"].values.tolist() == [0, 1, 2, 0, 1, 2, 3, 4]
        for layer in ("early", "late"):
            exported = clean["latent"].sel(feature=clean["feature_layer"] == layer)
            assert exported["feature_unit"].values.tolist() == list(range(direct["latents"][layer].shape[2]))
            np.testing.assert_allclose(exported, direct["latents"][layer].numpy().mean(axis=(3, 4)),
                                       rtol=1e-5, atol=1e-6)
        assert ds["n_parameters"].sel(seed=seed).item() == parameter_count(model)
        assert ds["weight_norm"].sel(seed=seed).item() == pytest.approx(model.resource_summary()["weight_norm"])
    assert ds["channels"].dims == ("seed", "layer") and ds["channels"].values.tolist() == [[3, 5], [3, 5]]


def test_user_model_trained_then_exported_agrees_with_evaluate(digits, tmp_path):
    from brainres.train import TrainConfig, evaluate, load_trained, stimuli_to_tensors, train_model

    stimuli = brainres.load_stimuli("digits").isel(stimulus_id=slice(0, 300))
    images, labels, _ = stimuli_to_tensors(stimuli)
    config = TrainConfig(seed=2, epochs=2, batch_size=32, learning_rate=0.01)
    train_model(TwoLayerNet, images, labels, config, n_classes=10, record={"classes": CLASSES, "in_channels": 1},
                run_dir=tmp_path / "run")
    trained = load_trained(tmp_path / "run", build=TwoLayerNet)
    ds = run({trained.seed: trained.model}, digits, tmp_path / "trained.nc", record=trained.record, latents=True)
    behaviour = evaluate(trained.model, _images(digits), digits["label"].values, entropy_threshold=0.5)
    clean = ds.sel(seed=2, occlusion=0.0)
    np.testing.assert_array_equal(clean["entropy_threshold_step"].values.astype(int), behaviour["halting_step"])
    np.testing.assert_array_equal(clean["halted_class"], behaviour["predicted"])
    np.testing.assert_array_equal(clean["halted_correct"], behaviour["correct"])
    assert ds.attrs["config"] == {"classes": CLASSES, "in_channels": 1}
    assert not {"halting_probability", "expected_halting_step", "median_halting_step"} & set(ds.data_vars)
    assert ds["feature_layer"].values.tolist() == ["early"] * 3 + ["late"] * 5
    assert ds["n_parameters"].item() == trained.n_parameters


def test_latents_asked_of_a_model_without_latents(digits, tmp_path):
    plain = FixedStepRecurrentNet(LATTICE, seed=0).eval()
    with pytest.raises(ExportError, match="latents were asked for, but the model returns no 'latents'"):
        export_models({0: plain}, digits, tmp_path / "x.nc", classes=CLASSES, in_channels=1, latents=True)
    assert list(tmp_path.iterdir()) == []
    # without latents it exports: one step, no halting
    ds = read_netcdf(export_models({0: plain}, digits, tmp_path / "y.nc", classes=CLASSES, in_channels=1))
    assert ds.sizes["step"] == 1 and "latent" not in ds and "halting_probability" not in ds
