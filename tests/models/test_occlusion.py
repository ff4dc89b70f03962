import numpy as np
import pytest
import torch

from brainres.models.occlusion import OcclusionError, default_patch_size, occlude, occlusion_mask


@pytest.mark.parametrize("level", [0.0, 0.1, 0.25, 0.5, 0.77, 1.0])
@pytest.mark.parametrize("size", [(8, 8), (28, 28), (7, 12)])
def test_mask_covers_exactly_the_requested_fraction(level, size):
    height, width = size
    mask = occlusion_mask(height=height, width=width, level=level, seed=0, stimulus_index=3)
    assert mask.shape == size
    assert mask.sum() == round(level * height * width)


def test_same_key_same_mask_other_keys_other_masks():
    kwargs = dict(height=16, width=16, level=0.4)
    first = occlusion_mask(**kwargs, seed=1, stimulus_index=5)
    assert np.array_equal(first, occlusion_mask(**kwargs, seed=1, stimulus_index=5))
    assert not np.array_equal(first, occlusion_mask(**kwargs, seed=2, stimulus_index=5))
    assert not np.array_equal(first, occlusion_mask(**kwargs, seed=1, stimulus_index=6))


def test_mask_is_made_of_patches():
    # With 4x4 patches on a 16x16 image at 25%, occluded pixels come in blocks:
    # most occluded pixels have an occluded horizontal neighbour.
    mask = occlusion_mask(height=16, width=16, level=0.25, seed=0, stimulus_index=0, patch_size=4)
    neighbour = np.zeros_like(mask)
    neighbour[:, 1:] |= mask[:, :-1]
    neighbour[:, :-1] |= mask[:, 1:]
    assert (mask & neighbour).sum() >= 0.8 * mask.sum()


def test_occlude_fills_gray_and_leaves_input_alone():
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    before = images.clone()
    out = occlude(images, level=0.5, seed=0, stimulus_index=[0, 1, 2, 3])
    assert torch.equal(images, before)
    changed = (out != images).any(dim=1)
    for i in range(4):
        mask = torch.from_numpy(occlusion_mask(height=8, width=8, level=0.5, seed=0, stimulus_index=i))
        assert torch.equal(changed[i], mask)
        assert (out[i][:, mask] == 0.5).all()  # every channel gray under the mask


def test_per_image_levels_and_level_zero():
    images = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    out = occlude(images, level=[0.0, 0.5, 1.0], seed=0, stimulus_index=[0, 1, 2])
    assert torch.equal(out[0], images[0])
    assert (out[2] == 0.5).all()
    assert int((out[1] != images[1]).sum()) <= 32


@pytest.mark.parametrize(
    "kwargs, words",
    [(dict(level=1.5), "level"), (dict(seed=-1), "seed"), (dict(stimulus_index=2.5), "stimulus_index"),
     (dict(patch_size=9), "patch_size")],
)
def test_bad_arguments_are_named(kwargs, words):
    base = dict(height=8, width=8, level=0.5, seed=0, stimulus_index=0)
    with pytest.raises(OcclusionError, match=words):
        occlusion_mask(**{**base, **kwargs})


def test_occlude_checks_index_count():
    with pytest.raises(OcclusionError, match="stimulus_index has 2 entries for 3 images"):
        occlude(torch.zeros(3, 1, 8, 8), level=0.5, seed=0, stimulus_index=[0, 1])


def test_default_patch_size():
    assert default_patch_size(8, 8) == 2
    assert default_patch_size(28, 28) == 7
    assert default_patch_size(2, 3) == 1
