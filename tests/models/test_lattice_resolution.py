"""The lattice's resolution settings (stem_stride, downsample) and the trainer's edge-map augmentation."""

import numpy as np
import pytest
import torch

from brainres.families.lattice import FixedStepRecurrentNet, LatticeConfig, LatticeNet
from brainres.models.inputs import InputError, edge_map
from brainres.settings import SettingsError
from brainres.train import TrainConfig, train_model

COARSE = LatticeConfig(n_classes=4, max_channels=6, max_layers=3, max_steps=4, stem_stride=2, downsample=True)


def _images(n=6, size=16, seed=0):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("top_down", [False, True])
@pytest.mark.parametrize("unrolling", ["biological", "sweep"])
def test_each_layer_at_half_the_side_of_the_one_below(top_down, unrolling):
    config = COARSE.replace(top_down=top_down, unrolling=unrolling)
    out = LatticeNet(config, seed=0)(_images(size=17))
    # 17 px, stride-2 stem: 9 px maps; then 5, 3 and 2 px layers (2 x 2 pooling keeps the odd remainder)
    assert [tuple(v.shape[-2:]) for v in out["latents"].values()] == [(5, 5), (3, 3), (2, 2)]
    assert out["logits"].shape == (6, 4, 4) and torch.allclose(out["halting_probability"].sum(1), torch.ones(6))
    plain = FixedStepRecurrentNet(config, seed=0)(_images(size=17))
    assert plain["logits"].shape == (6, 1, 4)


def test_full_size_layers_stay_the_default():
    config = LatticeConfig(n_classes=4, max_channels=6, max_layers=2, max_steps=3)
    assert config.stem_stride == 1 and config.downsample is False
    out = LatticeNet(config, seed=0)(_images(size=8))
    assert [tuple(v.shape[-2:]) for v in out["latents"].values()] == [(8, 8), (8, 8)]
    with pytest.raises(SettingsError, match="stem_stride"):
        LatticeConfig(stem_stride=3)


def test_early_exit_matches_the_full_run_with_downsampling():
    model = LatticeNet(COARSE.replace(top_down=True), seed=1).eval()
    images = _images(n=20, size=16, seed=3)
    with torch.no_grad():
        full = model(images)
        exited = model.early_exit(images, halting_mass=0.5)
    reached = full["halting_probability"].cumsum(dim=1) >= 0.5 - 1e-6
    reached[:, -1] = True
    step = reached.float().argmax(dim=1) + 1
    assert torch.equal(exited["halting_step"], step)
    expected = full["logits"][torch.arange(20), step - 1]
    assert torch.allclose(exited["logits"], expected, atol=1e-5)


def test_edge_map_draws_black_lines_on_white():
    square = torch.ones(2, 3, 12, 12)
    square[:, :, 3:9, 3:9] = 0.0
    drawing = edge_map(square)
    assert drawing.shape == square.shape and float(drawing.min()) == 0.0
    # flat regions (inside and outside the square, and the image border) are white
    assert float(drawing[0, 0, 0, 0]) == 1.0 and float(drawing[0, 0, 6, 6]) == 1.0
    assert float(drawing[0, 0, 3, 6]) < 0.5  # the square's edge is dark
    with pytest.raises(InputError, match="dims"):
        edge_map(torch.ones(12, 12))


def test_edge_map_training_is_seeded_and_changes_what_is_learned():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(40, 1, 12, 12, generator=generator)
    labels = torch.arange(40) % 4
    config = LatticeConfig(n_classes=4, max_channels=4, max_layers=2, max_steps=3, stem_stride=2, downsample=True)

    def train(edge_maps):
        return train_model(lambda: LatticeNet(config), images, labels,
                           TrainConfig(epochs=2, batch_size=8, edge_maps=edge_maps), n_classes=4).model.state_dict()

    first, second, plain = train(0.5), train(0.5), train(0.0)
    for name in first:
        assert torch.equal(first[name], second[name]), name  # same seed, same weights
    assert any(not torch.equal(first[name], plain[name]) for name in first)
    with pytest.raises(SettingsError, match="edge_maps"):
        TrainConfig(edge_maps=1.5)
    assert np.isclose(TrainConfig().edge_maps, 0.0)
