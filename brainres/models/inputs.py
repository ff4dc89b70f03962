"""What an image model is shown: stimuli as float tensors, their target classes, stable occluder keys.

Training and export share these, so a stimulus is resized, converted and
occluded the same way in both.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr

from brainres.errors import BrainresError


class InputError(BrainresError, ValueError):
    """Images or class names cannot be turned into what the model expects."""


def images_to_tensor(images) -> torch.Tensor:
    """uint8 images (stimulus, y, x, channel) -> float tensor (stimulus, channel, y, x) in [0, 1]."""
    array = np.asarray(images)
    if array.ndim != 4 or array.dtype != np.uint8:
        raise InputError(f"images must be uint8 with dims (stimulus, y, x, channel), got {array.dtype} {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2))).float() / 255.0


def prepare_images(images: np.ndarray, *, in_channels: int, image_size: int | None) -> torch.Tensor:
    """uint8 (stimulus, y, x, channel) -> float (stimulus, in_channels, size, size) in [0, 1].

    Colour images become luminance (ITU-R 601 weights) for a grey model; grey
    images are repeated for a colour model; images are resized with
    antialiased bilinear interpolation when ``image_size`` differs.
    """
    tensor = images_to_tensor(images)
    channels = tensor.shape[1]
    if channels == 3 and in_channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        tensor = (tensor * weights).sum(dim=1, keepdim=True)
    elif channels == 1 and in_channels == 3:
        tensor = tensor.repeat(1, 3, 1, 1)
    elif channels != in_channels:
        raise InputError(f"cannot turn {channels}-channel images into {in_channels}-channel model input")
    if image_size is not None and tuple(tensor.shape[2:]) != (image_size, image_size):
        tensor = F.interpolate(tensor, size=(image_size, image_size), mode="bilinear", antialias=True,
                               align_corners=False).clamp(0, 1)
    return tensor


def flip_and_shift(images: torch.Tensor, *, flip, shift) -> torch.Tensor:
    """Mirror some images left-right and translate each by whole pixels (reflected at the borders).

    Parameters
    ----------
    images : torch.Tensor
        Float images (stimulus, channel, y, x).
    flip : array of bool, one per image
        Which images are mirrored.
    shift : int array (stimulus, 2)
        Each image's (dy, dx) translation in pixels; the uncovered border is
        filled by reflecting the image (as in the standard CIFAR-10 augmentation
        of padding and random crops).

    >>> images = torch.arange(16.0).view(1, 1, 4, 4)
    >>> flip_and_shift(images, flip=[True], shift=[[0, 0]])[0, 0, 0].tolist()
    [3.0, 2.0, 1.0, 0.0]
    >>> flip_and_shift(images, flip=[False], shift=[[0, 1]])[0, 0, 0].tolist()
    [1.0, 0.0, 1.0, 2.0]
    """
    flip = torch.as_tensor(np.asarray(flip, dtype=bool))
    shift = np.asarray(shift, dtype=np.int64).reshape(len(images), 2)
    images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    pad = int(np.abs(shift).max()) if len(shift) else 0
    if pad == 0:
        return images
    height, width = images.shape[-2:]
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    return torch.stack([padded[i, :, pad - dy:pad - dy + height, pad - dx:pad - dx + width]
                        for i, (dy, dx) in enumerate(shift)])


def edge_map(images: torch.Tensor) -> torch.Tensor:
    """Line-drawing versions of float images: one minus the Sobel gradient magnitude of their luminance.

    Each image's magnitude is scaled to a maximum of 1, so edges are black on
    white, like the Geirhos edge stimuli; the result has the input's shape
    (colour inputs get the same map in every channel).

    Examples
    --------
    >>> square = torch.ones(1, 1, 8, 8); square[..., 2:6, 2:6] = 0
    >>> drawing = edge_map(square)
    >>> float(drawing[0, 0, 0, 0]), float(drawing[0, 0, 4, 4]), float(drawing.min())
    (1.0, 1.0, 0.0)
    """
    if images.ndim != 4:
        raise InputError(f"images must have dims (stimulus, channel, y, x), got shape {tuple(images.shape)}")
    channels = images.shape[1]
    grey = images if channels == 1 else (images[:, :3] * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(
        dim=1, keepdim=True)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=grey.dtype).view(1, 1, 3, 3)
    # replicate padding: the image border is not an edge
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    magnitude = torch.sqrt(F.conv2d(padded, sobel) ** 2 + F.conv2d(padded, sobel.transpose(2, 3)) ** 2)
    magnitude = magnitude / magnitude.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    return (1 - magnitude).repeat(1, channels, 1, 1)


def stimulus_classes(stimuli: xr.Dataset) -> list[str]:
    """Class names of a labelled stimulus set, in label order (``label.attrs['classes']``), else sorted categories."""
    if "label" in stimuli and "classes" in stimuli["label"].attrs:
        return [str(c) for c in stimuli["label"].attrs["classes"]]
    return sorted({str(c) for c in np.asarray(stimuli["category"].values)})


def class_indices(stimuli: xr.Dataset, classes: Sequence[str], *, unknown_classes: str = "error") -> np.ndarray:
    """Index of each stimulus's ``category`` in the model's ``classes``.

    A category the model was not trained on is an error, or with
    ``unknown_classes="unscored"`` gets index -1 (such stimuli are never
    counted correct; for representational comparisons on foreign image sets).
    """
    if unknown_classes not in ("error", "unscored"):
        raise InputError(f"unknown_classes must be 'error' or 'unscored', got {unknown_classes!r}")
    categories = np.asarray(stimuli["category"].values).astype(str)
    position = {name: i for i, name in enumerate(classes)}
    unknown = sorted(str(c) for c in set(categories) - set(position))
    if unknown and unknown_classes == "error":
        raise InputError(f"stimulus categories the model was not trained on: {unknown}; model classes: {list(classes)}"
                         " (export with unknown_classes='unscored' to run it anyway)")
    return np.array([position.get(c, -1) for c in categories], dtype=np.int64)


def stable_stimulus_index(stimulus_id: str) -> int:
    """An integer identity of a stimulus for its occluder, independent of stimulus order."""
    return int.from_bytes(hashlib.sha256(stimulus_id.encode()).digest()[:4], "big")
