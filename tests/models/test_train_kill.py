"""A training process killed with SIGKILL resumes to the same weights (slow: real processes)."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

pytestmark = pytest.mark.slow

SCRIPT = """
import sys, numpy as np, torch
from sklearn.datasets import load_digits
from brainres.families.lattice import LatticeConfig, LatticeNet
from brainres.models.inputs import images_to_tensor
from brainres.train import TrainConfig, train_model
digits = load_digits()
images = images_to_tensor((digits.images[:300] * 255 / 16).round().astype(np.uint8)[..., None])
labels = torch.from_numpy(digits.target[:300]).long()
lattice = LatticeConfig(max_channels=6, max_layers=2, max_steps=4, lambda_time=0.01)
record = {"family": "lattice", "settings": lattice.to_dict(), "classes": [str(c) for c in range(10)],
          "in_channels": 1, "image_size": None}
config = TrainConfig(seed=3, epochs=int(sys.argv[2]), batch_size=32, learning_rate=0.01,
                     occlusion_levels=(0.0, 0.25, 0.5))
train_model(lambda: LatticeNet(lattice), images, labels, config, n_classes=10, record=record, run_dir=sys.argv[1])
"""


def _run(run_dir, epochs):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(run_dir), str(epochs)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _epochs_done(run_dir):
    try:
        return len(pd.read_csv(run_dir / "log.csv"))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


def test_sigkill_mid_run_then_rerun_gives_the_uninterrupted_weights(tmp_path):
    epochs = 12
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _run(straight, epochs).wait(timeout=600) == 0

    process = _run(killed, epochs)
    deadline = time.monotonic() + 600
    while _epochs_done(killed) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the run finished before it could be killed"
    assert 3 <= _epochs_done(killed) < epochs

    assert _run(killed, epochs).wait(timeout=600) == 0
    left = torch.load(straight / "checkpoint.pt", weights_only=True)
    right = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert left["epoch"] == right["epoch"] == epochs
    for name, value in left["model"].items():
        assert torch.equal(value, right["model"][name]), name
    assert torch.equal(left["generator"], right["generator"])
    for key, state in left["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, right["optimizer"]["state"][key][name]), (key, name)
    pd.testing.assert_frame_equal(pd.read_csv(straight / "log.csv").drop(columns="seconds"),
                                  pd.read_csv(killed / "log.csv").drop(columns="seconds"))
