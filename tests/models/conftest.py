"""Shared fixtures for the lattice tests: a small slice of sklearn's 8x8 digits."""

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def digits_tensors():
    """(images float NCHW in [0, 1], labels int64) of all 1797 sklearn digits."""
    from sklearn.datasets import load_digits

    from brainres.models.inputs import images_to_tensor

    digits = load_digits()
    images = (digits.images * 255 / 16).round().astype(np.uint8)[..., None]
    return images_to_tensor(images), torch.from_numpy(digits.target).long()


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests share 2 cores with other work; keep torch to one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
