"""Deterministic occluders: gray square patches covering a requested fraction of an image.

The mask of one image depends only on ``(seed, stimulus_index, level)`` and the
image size, so the same stimulus at the same level is occluded the same way in
training, evaluation and export, on any machine.
"""

from __future__ import annotations

import numpy as np
import torch

from brainres.errors import BrainresError

# Levels are turned into integers for the seed; 1e6 keeps 0.5 and 0.500001 apart.
_LEVEL_RESOLUTION = 1_000_000


class OcclusionError(BrainresError, ValueError):
    """An occlusion level, seed, index or image tensor is invalid."""


def default_patch_size(height: int, width: int) -> int:
    """Patch side used when none is given: a quarter of the shorter side (at least 1)."""
    return max(1, round(min(height, width) / 4))


def occlusion_mask(
    *, height: int, width: int, level: float, seed: int, stimulus_index: int, patch_size: int | None = None
) -> np.ndarray:
    """Boolean mask (True = occluded) covering exactly ``round(level * height * width)`` pixels.

    Square patches of side ``patch_size`` are dropped at random positions until
    the requested number of pixels is covered; the last patch is trimmed (in
    raster order) so the count is exact.

    Parameters
    ----------
    height, width : int
        Image size in pixels.
    level : float
        Fraction of pixels to occlude, in [0, 1].
    seed : int
        Experiment seed (>= 0).
    stimulus_index : int
        Index of the stimulus (>= 0); different stimuli get different masks.
    patch_size : int, optional
        Side of the square patches; default :func:`default_patch_size`.

    Returns
    -------
    numpy.ndarray of bool, shape (height, width)
    """
    level = float(level)
    if not 0 <= level <= 1:
        raise OcclusionError(f"occlusion level must lie in [0, 1], got {level}")
    for name, value in (("seed", seed), ("stimulus_index", stimulus_index)):
        if int(value) != value or value < 0:
            raise OcclusionError(f"{name} must be a non-negative integer, got {value!r}")
    patch_size = patch_size or default_patch_size(height, width)
    if patch_size < 1 or patch_size > min(height, width):
        raise OcclusionError(f"patch_size must lie in [1, {min(height, width)}], got {patch_size}")
    target = int(round(level * height * width))
    mask = np.zeros((height, width), dtype=bool)
    if target == 0:
        return mask
    rng = np.random.default_rng([int(seed), int(stimulus_index), int(round(level * _LEVEL_RESOLUTION))])
    covered = 0
    # Random squares find the last few uncovered pixels slowly; after this many
    # tries the remainder is filled pixel by pixel in a seeded order.
    for _ in range(50 * height * width):
        top = rng.integers(0, height - patch_size + 1)
        left = rng.integers(0, width - patch_size + 1)
        patch = np.zeros_like(mask)
        patch[top : top + patch_size, left : left + patch_size] = True
        new = patch & ~mask
        n_new = int(new.sum())
        if covered + n_new >= target:
            rows, cols = np.nonzero(new)
            keep = target - covered
            mask[rows[:keep], cols[:keep]] = True
            return mask
        mask |= new
        covered += n_new
    remaining = np.flatnonzero(~mask.ravel())
    chosen = rng.permutation(remaining)[: target - covered]
    mask.ravel()[chosen] = True
    return mask


def occlude(
    images: torch.Tensor,
    *,
    level,
    seed: int,
    stimulus_index,
    patch_size: int | None = None,
    fill: float = 0.5,
) -> torch.Tensor:
    """Return occluded copies of ``images`` (the input is not modified).

    Parameters
    ----------
    images : torch.Tensor, shape (batch, channel, height, width)
        Float images in [0, 1].
    level : float or sequence of float
        Fraction occluded, one for all images or one per image.
    seed : int
        Experiment seed.
    stimulus_index : sequence of int, shape (batch,)
        Index of each image's stimulus (the mask's identity).
    patch_size : int, optional
        Side of the square patches.
    fill : float
        Value of occluded pixels (0.5 = mid-gray).

    Returns
    -------
    torch.Tensor, same shape and dtype as ``images``
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise OcclusionError(
            f"images must be a (batch, channel, height, width) tensor, got {getattr(images, 'shape', type(images))}"
        )
    batch, _, height, width = images.shape
    indices = np.asarray(stimulus_index).reshape(-1)
    if indices.size != batch:
        raise OcclusionError(f"stimulus_index has {indices.size} entries for {batch} images")
    levels = np.broadcast_to(np.asarray(level, dtype=float), (batch,))
    masks = np.stack(
        [
            occlusion_mask(
                height=height, width=width, level=levels[i], seed=seed,
                stimulus_index=int(indices[i]), patch_size=patch_size,
            )
            for i in range(batch)
        ]
    )
    mask = torch.from_numpy(masks)[:, None].expand_as(images)
    return torch.where(mask, torch.as_tensor(fill, dtype=images.dtype), images)
