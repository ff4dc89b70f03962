"""Training and export on a GPU: skipped where torch sees no CUDA device (CI); run them where one is at hand.

The CPU path is the tested one; these show that the same code trains and exports on a GPU,
deterministically, with results that agree with the CPU's up to floating-point rounding.
"""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import brainres
from brainres.data.io import read_netcdf
from brainres.export import export_models
from brainres.models.inputs import class_indices, prepare_images
from brainres.train import TrainConfig, train_model

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device here")]


class SmallBL(torch.nn.Module):
    """A user's recurrent conv net: bottom-up and lateral convolutions, a readout at each of 3 steps (8 x 8 input)."""

    def __init__(self):
        super().__init__()
        self.up, self.lateral = torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.Conv2d(16, 16, 3, padding=1)
        self.readout = torch.nn.Linear(16 * 4, 10)

    def forward(self, images):
        state, logits, maps = None, [], []
        for _ in range(3):
            drive = self.up(images) if state is None else self.up(images) + self.lateral(state)
            state = F.relu(drive)
            maps.append(state)
            logits.append(self.readout(F.avg_pool2d(state, 4).flatten(1)))  # deterministic on CUDA too
        return {"logits": torch.stack(logits, 1), "latents": {"conv": torch.stack(maps, 1)}}


@pytest.fixture(scope="module")
def digits():
    stimuli = brainres.load_stimuli("digits")
    images = prepare_images(stimuli["image"].values, in_channels=1, image_size=None)
    return stimuli, images, torch.from_numpy(class_indices(stimuli, [str(i) for i in range(10)]))


def train(digits, device, run_dir=None):
    _, images, labels = digits
    config = TrainConfig(seed=0, epochs=4, batch_size=64, learning_rate=0.01, device=device)
    return train_model(SmallBL, images, labels, config, n_classes=10, run_dir=run_dir)


def test_a_user_model_trains_on_the_gpu_deterministically_and_like_on_the_cpu(digits, tmp_path):
    gpu = train(digits, "cuda", tmp_path / "gpu")
    assert all(p.is_cuda for p in gpu.model.parameters())
    again = train(digits, "cuda")
    for name, value in gpu.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[name]), name  # deterministic on the GPU
    cpu = train(digits, "cpu")
    assert gpu.log["held_out_accuracy"].iloc[-1] > 0.8 and cpu.log["held_out_accuracy"].iloc[-1] > 0.8
    assert abs(gpu.log["held_out_accuracy"].iloc[-1] - cpu.log["held_out_accuracy"].iloc[-1]) < 0.05
    assert json.loads((tmp_path / "gpu" / "config.json").read_text())["training"]["device"] == "cuda"


def test_exports_on_the_gpu_agree_with_the_cpu(digits, tmp_path):
    stimuli = digits[0].isel(stimulus_id=slice(0, 300))
    model = train(digits, "cuda").model
    options = {"classes": [str(i) for i in range(10)], "in_channels": 1, "occlusion_levels": [0.0, 0.5],
               "latents": True}
    on_gpu = read_netcdf(export_models({0: model}, stimuli, tmp_path / "gpu.nc", device="cuda", **options))
    on_cpu = read_netcdf(export_models({0: model.cpu()}, stimuli, tmp_path / "cpu.nc", device="cpu", **options))
    np.testing.assert_allclose(on_gpu["entropy"], on_cpu["entropy"], atol=1e-4)
    np.testing.assert_allclose(on_gpu["latent"], on_cpu["latent"], rtol=1e-4, atol=1e-5)
    assert (on_gpu["predicted_class"] == on_cpu["predicted_class"]).mean() > 0.99


def test_a_pipeline_runs_on_the_gpu(tmp_path, monkeypatch):
    from brainres.data.registry import PLUGINS_ENV
    from brainres.pipeline.config import parse_pipeline
    from brainres.pipeline.run import run_pipeline
    from brainres.testing import TOY_PLUGIN, toy_pipeline

    monkeypatch.setenv(PLUGINS_ENV, TOY_PLUGIN)
    run_pipeline(parse_pipeline(toy_pipeline(epochs=2)), tmp_path, executor="in-process", device="cuda",
                 progress=False, quiet=True)
    provenance = json.loads((tmp_path / "provenance.json").read_text())
    assert provenance["device"] == "cuda" and all(t["status"] == "ran" for t in provenance["tasks"])
    trained = json.loads(next(tmp_path.glob("models/*/config.json")).read_text())
    assert trained["training"]["device"] == "cuda"
    assert "on cuda" in (tmp_path / "report.html").read_text()


def test_the_lattice_runs_and_exits_early_on_the_gpu():
    from brainres.families.lattice import LatticeConfig, LatticeNet
    from brainres.models.contract import halting_steps

    model = LatticeNet(LatticeConfig(max_channels=6, max_layers=2, max_steps=5), seed=0).cuda().eval()
    images = torch.rand(16, 1, 12, 12, generator=torch.Generator().manual_seed(0)).cuda()
    with torch.no_grad():
        out = model(images)
        early = model.early_exit(images)
    assert out["logits"].is_cuda and out["cost"].is_cuda
    steps = halting_steps(out["logits"].cpu().numpy(), out["halting_probability"].double().cpu().numpy())
    np.testing.assert_array_equal(early["halting_step"].cpu().numpy(), steps)
