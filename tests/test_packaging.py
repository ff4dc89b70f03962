"""The project's shape: plug-ins inside the brainres namespace, README and CI in agreement."""

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_plugin_folders_are_installed_inside_brainres():
    import brainres.comparisons
    import brainres.datasets

    assert Path(brainres.datasets.__file__).resolve().parent == ROOT / "datasets"
    assert Path(brainres.comparisons.__file__).resolve().parent == ROOT / "comparisons"


def test_no_top_level_datasets_or_comparisons_package():
    # a top-level 'datasets' would shadow Hugging Face datasets
    for name in ("datasets", "comparisons"):
        spec = importlib.util.find_spec(name)
        assert spec is None or Path(spec.origin or "").resolve().parent != ROOT / name


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = {v: k for k, v in config["package-dir"].items()}
    found = set()
    for top in ("brainres", "datasets", "comparisons"):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            found.add(".".join((mapping.get(parts[0], parts[0]),) + parts[1:]))
    assert found == listed


def test_dataset_registry_files_ship_with_the_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["brainres.datasets"]
    for registry_file in (ROOT / "datasets" / "registry").iterdir():
        assert any(registry_file.match(p.split("/")[-1]) for p in patterns), registry_file


def test_ci_runs_exactly_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    install_and_demo, tests = blocks[0].strip(), blocks[1].strip()
    install = install_and_demo.split(" && ")[0]
    assert install_and_demo.endswith("brainres demo")
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.strip().startswith("#")]
    assert install in ci and tests in ci
    assert ci.index(install) < ci.index(tests)
    assert "BRAINRES_DATA" in (ROOT / ".ci" / "run").read_text()


def test_torch_is_the_cpu_build():
    torch = pytest.importorskip("torch")
    assert torch.version.cuda is None
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()
