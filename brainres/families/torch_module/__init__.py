"""Any user's ``torch.nn.Module`` as an image family: ``family = "torch"`` with ``factory`` and ``options``.

``factory = "blnet:build"`` names a module and a callable; ``options`` are its
keyword arguments. The module is looked up first in the pipeline file's folder
(``blnet.py`` or a package ``blnet/``), then among installed packages. Its
source files are part of every task hash, so editing the model retrains it.
See ``docs/your-model.md``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

import torch

from brainres.errors import BrainresError
from brainres.families.base import ImageFamily
from brainres.settings import SettingsError, unknown_keys


class FactoryError(BrainresError, ValueError):
    """A model factory cannot be found, imported or called."""


def _module_file(module_name: str, folder: Path | None) -> Path | None:
    """The file of ``module_name`` inside ``folder`` (a module or a package), if there is one."""
    if folder is None:
        return None
    relative = Path(*module_name.split("."))
    for candidate in (folder / relative.with_suffix(".py"), folder / relative / "__init__.py"):
        if candidate.is_file():
            return candidate.resolve()
    return None


def _installed_file(module_name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin).resolve() if spec and spec.origin else None


def _import(module_name: str, folder: Path | None):
    file = _module_file(module_name, folder)
    if file is not None and file == _installed_file(module_name):
        file = None  # an installed package seen from its own source tree: import it, don't put the tree on sys.path
    if file is None:
        try:
            return importlib.import_module(module_name)
        except ImportError as err:
            where = f" in {folder} or" if folder else ""
            raise FactoryError(f"cannot import {module_name!r}: no {module_name.replace('.', '/')}.py{where} among "
                               f"installed packages ({err})") from None
    # A private name per file, so two pipelines with their own blnet.py never share a cached module.
    digest = hashlib.sha256(str(file).encode()).hexdigest()[:12]
    private = f"brainres_user_{digest}_{module_name.replace('.', '_')}"
    if private in sys.modules:
        return sys.modules[private]
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # the user's module may import its neighbours
    spec = importlib.util.spec_from_file_location(
        private, file, submodule_search_locations=[str(file.parent)] if file.name == "__init__.py" else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[private] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[private]
        raise FactoryError(f"importing {file} failed: {type(err).__name__}: {err}") from err
    return module


def load_factory(factory: str, folder=None):
    """The callable named by ``"module:callable"``, imported from ``folder`` if the module is there."""
    module_name, sep, attribute = factory.partition(":")
    if not sep or not module_name or not attribute:
        raise FactoryError(f"factory must be 'module:callable', got {factory!r}")
    module = _import(module_name, Path(folder) if folder else None)
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            names = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
            raise FactoryError(f"{module_name} has no {attribute!r}; callables there: {names}")
        target = getattr(target, part)
    if not callable(target):
        raise FactoryError(f"{factory} is not callable")
    return target


def source_files(factory: str, folder) -> list[Path]:
    """The Python files behind a factory: its module, or every file of its package."""
    module_name = factory.partition(":")[0]
    file = _module_file(module_name, Path(folder) if folder else None)
    if file is None:
        spec = importlib.util.find_spec(module_name.split(".")[0])
        file = Path(spec.origin) if spec and spec.origin else None
    if file is None:
        return []
    if file.name == "__init__.py":
        return sorted(file.parent.rglob("*.py"))
    return [file]


def _settings(values: dict, *, in_channels: int, n_classes: int, folder=None):
    problems = unknown_keys(values, ("factory", "options"))
    factory = values.get("factory")
    if not isinstance(factory, str) or ":" not in factory:
        problems.append(f"factory: expected 'module:callable' (e.g. 'blnet:build'), got {factory!r}")
    options = values.get("options", {})
    if not isinstance(options, dict):
        problems.append(f"options: expected a table of keyword arguments, got {options!r}")
    if problems:
        raise SettingsError(problems)
    callable_ = load_factory(factory, folder)
    try:
        inspect.signature(callable_).bind(**options)
    except TypeError as err:
        raise SettingsError([f"options: {factory} does not take {sorted(options)} ({err})"]) from None
    except ValueError:  # no signature to inspect (a builtin); the call will tell
        pass
    location = {"folder": str(Path(folder).resolve())} if folder else {}
    return {"factory": factory, "options": dict(options)}, location


def _build(record: dict, *, seed: int, location: dict) -> torch.nn.Module:
    settings = record["settings"]
    factory = load_factory(settings["factory"], location.get("folder"))
    try:
        model = factory(**settings["options"])
    except Exception as err:
        raise FactoryError(f"{settings['factory']}(**{settings['options']}) failed: {type(err).__name__}: {err}") from err
    if not isinstance(model, torch.nn.Module):
        raise FactoryError(f"{settings['factory']} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _describe(record: dict) -> str:
    settings = record["settings"]
    options = ", ".join(f"{k} = {v!r}" for k, v in settings["options"].items())
    return f"a user-supplied PyTorch network ({settings['factory']}{f'; {options}' if options else ''})"


FAMILY = ImageFamily(
    id="torch",
    description="any torch.nn.Module meeting the image-model contract, built by a factory",
    settings_table=None,
    model_keys=("factory", "options"),
    settings=_settings,
    build=_build,
    describe=_describe,
    code_files=lambda settings, location: source_files(settings["factory"], location.get("folder")),
    example={"factory": "brainres.testing:tiny_recurrent_net", "options": {"n_classes": 10, "steps": 3}},
)
