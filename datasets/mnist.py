"""The MNIST test set (10,000 handwritten digits, 28x28 grey), in the original IDX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brainres.data.readers import read_idx
from brainres.data.registry import DatasetSpec
from brainres.errors import DataFileError
from brainres.datasets._common import registered_files, stimuli_dataset

BASE_URLS = (("", "https://ossci-datasets.s3.amazonaws.com/mnist/"),)
IMAGES, LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def load(paths: dict[str, Path]):
    images, labels = read_idx(paths[IMAGES]), read_idx(paths[LABELS])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataFileError(paths[IMAGES], f"images {images.shape} and labels {labels.shape} do not match")
    ids = [f"mnist-test-{i:05d}" for i in range(len(labels))]
    ds = stimuli_dataset(ids, images[..., None], [str(int(x)) for x in labels],
                         label=labels.astype(np.int64), test_index=np.arange(len(labels)))
    ds["label"].attrs["classes"] = [str(i) for i in range(10)]
    return ds


MNIST_TEST = DatasetSpec(
    id="mnist-test",
    kind="stimuli",
    description="MNIST test set: 10,000 digits 28x28x1 with labels",
    folder="mnist",
    source="LeCun, Cortes & Burges MNIST database (t10k IDX files)",
    license="CC BY-SA 3.0",
    citation="LeCun, Y., Bottou, L., Bengio, Y., & Haffner, P. (1998). Gradient-based learning applied "
             "to document recognition. Proceedings of the IEEE, 86(11), 2278-2324.",
    data_files=lambda: list(registered_files("mnist.txt", BASE_URLS)),
    stimulus_files=lambda: list(registered_files("mnist.txt", BASE_URLS)),
    load=load,
    load_stimuli=load,
)
