"""Dataset plug-ins, installed as ``brainres.datasets``.

One line per dataset: ``"dataset-id": "module:SPEC"``. A plug-in module is
imported only when its dataset is used. To add a dataset, write a module that
defines a :class:`brainres.data.registry.DatasetSpec` and add its line here.
"""

from brainres.data.trials import read_trials

INDEX = {
    "geirhos2021-edge": "geirhos2021:EDGE",
    "geirhos2021-silhouette": "geirhos2021:SILHOUETTE",
    "geirhos2021-cue-conflict": "geirhos2021:CUE_CONFLICT",
    "kriegeskorte2008-92": "kriegeskorte2008:RDMS_92",
    "mnist-test": "mnist:MNIST_TEST",
    "cifar10-test": "cifar10:CIFAR10_TEST",
    "cifar10h": "cifar10:CIFAR10H",
    "cifar10-test-train": "cifar10:CIFAR10_TEST_TRAIN",
    "cifar10-test-heldout": "cifar10:CIFAR10_TEST_HELDOUT",
    "cifar10h-heldout": "cifar10:CIFAR10H_HELDOUT",
    "digits": "digits:DIGITS",
}

__all__ = ["INDEX", "read_trials"]
