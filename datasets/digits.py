"""scikit-learn's bundled 8x8 digits (1,797 images; UCI optical recognition of digits).

Shipped inside scikit-learn, so it needs neither a download nor a mirror; the
0..16 pixel counts are scaled to 0..255 so the images follow the stimuli schema.
"""

from __future__ import annotations

import numpy as np

from brainres.data.registry import DatasetSpec
from brainres.datasets._common import stimuli_dataset


def load(paths=None):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    ids = [f"digits-{i:04d}" for i in range(len(labels))]
    ds = stimuli_dataset(ids, images, [str(x) for x in labels], label=labels)
    ds["label"].attrs["classes"] = [str(i) for i in range(10)]
    return ds


DIGITS = DatasetSpec(
    id="digits",
    kind="stimuli",
    description="scikit-learn digits: 1,797 images 8x8x1 with labels (no download)",
    folder="digits",
    source="scikit-learn sklearn.datasets.load_digits (UCI ML optical recognition of handwritten digits)",
    license="CC BY 4.0",
    citation="Alpaydin, E., & Kaynak, C. (1998). Optical Recognition of Handwritten Digits. UCI Machine "
             "Learning Repository.",
    load=load,
    load_stimuli=load,
)
