"""One registry of models: ``create_model(name_or_path, **options)``.

Names are registered by the modules that implement them (``@register_model("ciede2000")``);
checkpoint folders are recognised by loaders registered with ``@register_folder_loader``
(CD-Net folders, mPLUG-Owl2 / Q-Align / CD-Reasoning folders, any HF image-text-to-text model).
The built-in modules are imported on first use, so ``import cdbench`` stays light; a module whose
optional dependencies are missing is reported when one of its models is asked for.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path

from cdbench.errors import ModelError
from cdbench.models.base import CDModel

_BUILTIN_MODULES: tuple[str, ...] = (
    "cdbench.models.formulas",
    "cdbench.models.cdnet",
    "cdbench.models.mllm",
)
_MODELS: dict[str, Callable[..., CDModel]] = {}
_FOLDER_LOADERS: list[tuple[str, Callable[[Path], bool], Callable[..., CDModel]]] = []
_IMPORT_ERRORS: dict[str, str] = {}
_loaded = False


def register_model(*names: str):
    """Decorator registering a factory ``f(**options) -> CDModel`` under one or more names."""

    def deco(factory):
        for n in names:
            _MODELS[n.lower()] = factory
        return factory

    return deco


def register_folder_loader(label: str, detect: Callable[[Path], bool]):
    """Decorator registering ``f(folder, **options) -> CDModel`` for folders where ``detect`` is true."""

    def deco(factory):
        _FOLDER_LOADERS.append((label, detect, factory))
        return factory

    return deco


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name == mod:  # the module itself is not part of this install
                continue
            _IMPORT_ERRORS[mod] = f"{mod} needs {e.name!r} (pip install 'cdbench[mllm]')"


def list_models() -> list[str]:
    """The registered model names, sorted."""
    _load_builtins()
    return sorted(_MODELS)


def create_model(name_or_path: str | os.PathLike, **options) -> CDModel:
    """Create a model from a registered name (``"ciede2000"``, ``"cdnet"``, ...) or a folder.

    Options are passed to the model's factory (e.g. ``device="cuda"``, ``pooling="median"``).
    Raises :class:`~cdbench.errors.ModelError` naming the known models for an unknown name.
    """
    _load_builtins()
    key = str(name_or_path)
    if key.lower() in _MODELS:
        return _MODELS[key.lower()](**options)
    path = Path(key).expanduser()
    if path.is_dir():
        for _label, detect, factory in _FOLDER_LOADERS:
            if detect(path):
                return factory(path, **options)
        hint = f"; note: {'; '.join(_IMPORT_ERRORS.values())}" if _IMPORT_ERRORS else ""
        raise ModelError(f"{path}: not a model folder cdbench can load "
                         f"(known kinds: {', '.join(label for label, _, _ in _FOLDER_LOADERS) or 'none'}){hint}")
    hint = f"; note: {'; '.join(_IMPORT_ERRORS.values())}" if _IMPORT_ERRORS else ""
    raise ModelError(f"unknown model {key!r}: not a folder, and not one of {', '.join(sorted(_MODELS))}{hint}")
