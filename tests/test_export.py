import numpy as np
import pytest
import torch
import xarray as xr

import brainres
from brainres.data.io import read_netcdf
from brainres.errors import BrainresError
from brainres.export import ExportError, export_lattice, prepare_images
from brainres.models import readouts
from brainres.models.lattice import LatticeConfig, LatticeNet

CLASSES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def digits():
    return brainres.load_stimuli("digits").isel(stimulus_id=slice(0, 37))


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    config = LatticeConfig(in_channels=1, n_classes=10, max_channels=6, max_layers=2, max_steps=4)
    return {seed: LatticeNet(config, seed=seed).eval() for seed in (3, 1)}


def run(models, digits, path, **options):
    options = {"classes": CLASSES, "training_data": "test", "occlusion_levels": [0.0, 0.5]} | options
    return read_netcdf(export_lattice(models, digits, path, **options))


def test_export_matches_the_model_and_the_readouts(models, digits, tmp_path):
    ds = run(models, digits, tmp_path / "e.nc", latents=True, batch_size=16)
    assert ds.attrs["brainres_kind"] == "model_measures" and ds.attrs["model_family"] == "lattice"
    assert list(ds["seed"].values) == [1, 3]
    assert list(ds["stimulus_id"].values) == list(digits["stimulus_id"].values)  # order kept
    np.testing.assert_allclose(ds["halting_probability"].sum("step"), 1, atol=1e-6)
    images = prepare_images(digits["image"].values, in_channels=1, image_size=None)
    direct = models[3].measure(images)
    clean = ds.sel(seed=3, occlusion=0.0)
    np.testing.assert_allclose(clean["halting_probability"], direct["halting_probability"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(clean["expected_halting_step"],
                               readouts.expected_halting_step(direct["halting_probability"].numpy().astype(float)), rtol=1e-5)
    np.testing.assert_allclose(clean["uncertainty_auc"], readouts.uncertainty_auc(direct["logits"].numpy()), rtol=1e-5)
    np.testing.assert_array_equal(clean["predicted_class"], direct["logits"].numpy().argmax(2))
    np.testing.assert_allclose(clean["latent"].sel(layer=1), direct["latents"]["layer_1"].numpy(), rtol=1e-5, atol=1e-6)
    expected_accuracy = clean["halted_correct"].mean().item()
    assert ds["accuracy"].sel(seed=3, occlusion=0.0).item() == pytest.approx(expected_accuracy)
    # occlusion changes what the model sees
    assert not np.allclose(ds["entropy"].sel(occlusion=0.0), ds["entropy"].sel(occlusion=0.5))


def test_chunking_and_reruns_do_not_change_numbers(models, digits, tmp_path):
    small = run(models, digits, tmp_path / "a.nc", batch_size=5)
    large = run(models, digits, tmp_path / "b.nc", batch_size=64)
    again = run(models, digits, tmp_path / "c.nc", batch_size=5)
    xr.testing.assert_allclose(small, large, rtol=1e-5)
    xr.testing.assert_identical(small, again)


def test_unknown_categories_are_an_error_and_write_nothing(models, digits, tmp_path):
    with pytest.raises(ExportError, match=r"not trained on: \['9'\]"):
        export_lattice(models, digits, tmp_path / "x.nc", classes=CLASSES[:9], training_data="t")
    assert list(tmp_path.iterdir()) == []


def test_models_of_one_export_share_a_configuration(digits, tmp_path):
    a = LatticeNet(LatticeConfig(in_channels=1, max_steps=3), seed=0)
    b = LatticeNet(LatticeConfig(in_channels=1, max_steps=4), seed=1)
    with pytest.raises(ExportError, match="share a configuration"):
        export_lattice({0: a, 1: b}, digits, tmp_path / "x.nc", classes=CLASSES, training_data="t")
    with pytest.raises(BrainresError, match="distinct fractions"):
        export_lattice({0: a}, digits, tmp_path / "x.nc", classes=CLASSES, training_data="t", occlusion_levels=[0, 1.5])


def test_prepare_images_converts_channels_and_size():
    rgb = np.zeros((2, 10, 10, 3), np.uint8)
    rgb[..., 0] = 255
    grey = prepare_images(rgb, in_channels=1, image_size=5)
    assert grey.shape == (2, 1, 5, 5)
    np.testing.assert_allclose(grey.numpy(), 0.299, atol=1e-6)
    colour = prepare_images(np.full((1, 4, 4, 1), 51, np.uint8), in_channels=3, image_size=None)
    assert colour.shape == (1, 3, 4, 4) and torch.allclose(colour, torch.tensor(0.2))


def test_foreign_stimuli_can_be_exported_unscored(models, digits, tmp_path):
    ds = run(models, digits, tmp_path / "u.nc", classes=CLASSES[:9], unknown_classes="unscored", latents=True)
    nines = ds["category"].values == "9"
    assert (ds["target_class"].values[nines] == -1).all() and ds.attrs["n_unscored"] == nines.sum()
    assert not ds["halted_correct"].values[:, nines].any()
