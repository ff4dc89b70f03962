"""Speed of the gated lattice against peers in the same run (pytest -m benchmark -s)."""

import time

import numpy as np
import pytest
import torch

from brainres.families.lattice import FixedStepRecurrentNet, LatticeConfig, LatticeNet
from brainres.models.contract import run_model, task_loss
from brainres.train import TrainConfig, train_model

pytestmark = pytest.mark.benchmark

CONFIG = LatticeConfig(max_channels=16, max_layers=3, max_steps=6, lambda_breadth=0.01, lambda_depth=0.01,
                       lambda_time=0.01)


def _median_seconds(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def _training_step(model, optimizer, images, labels):
    def step():
        # the trainer's loss: cross-entropy over steps plus the model's own cost (none for the plain net)
        out = run_model(model, images)
        loss = task_loss(out, labels, step_loss_weight=0.5)
        if out.cost is not None:
            loss = loss + out.cost
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def test_training_step_time_against_plain_recurrent_net():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(64, 1, 8, 8, generator=generator)
    labels = torch.randint(0, 10, (64,), generator=generator)
    lattice, plain = LatticeNet(CONFIG, seed=0), FixedStepRecurrentNet(CONFIG, seed=0)
    lattice_step = _training_step(lattice, torch.optim.Adam(lattice.parameters()), images, labels)
    plain_step = _training_step(plain, torch.optim.Adam(plain.parameters()), images, labels)
    # Alternate the two so drifting machine load hits both alike.
    lattice_times, plain_times = [], []
    for _ in range(5):
        lattice_times.append(_median_seconds(lattice_step, 10))
        plain_times.append(_median_seconds(plain_step, 10))
    ratio = np.median(lattice_times) / np.median(plain_times)
    print(f"\ntraining step (batch 64, 8x8, 16 ch, 3 layers, 6 steps): lattice {np.median(lattice_times) * 1e3:.1f} ms, "
          f"plain {np.median(plain_times) * 1e3:.1f} ms, ratio {ratio:.2f} (goal <= 1.25)")
    assert ratio <= 1.25


def test_early_exit_inference_against_all_steps(digits_tensors):
    images, labels = digits_tensors
    lattice = CONFIG.replace(lambda_time=0.05)
    config = TrainConfig(epochs=3, learning_rate=0.01, batch_size=32, occlusion_levels=(0.0, 0.25, 0.5))
    model = train_model(lambda: LatticeNet(lattice), images, labels, config, n_classes=lattice.n_classes).model.eval()
    held = images[:512]
    with torch.no_grad():
        exit_times, full_times = [], []
        for _ in range(5):
            exit_times.append(_median_seconds(lambda: model.early_exit(held), 5))
            full_times.append(_median_seconds(lambda: model(held), 5))
        mean_step = float(model.early_exit(held)["halting_step"].float().mean())
    ratio = np.median(exit_times) / np.median(full_times)
    print(f"\ninference of 512 digits: early exit {np.median(exit_times) * 1e3:.1f} ms "
          f"(mean halting step {mean_step:.2f} of {lattice.max_steps}), all steps "
          f"{np.median(full_times) * 1e3:.1f} ms, ratio {ratio:.2f}")
    # Early exit must save time in proportion to the steps it skips (with slack for bookkeeping).
    assert ratio < (mean_step / lattice.max_steps) + 0.25
