"""Register ``model_type: mplug_owl2`` with the transformers Auto classes, without importing transformers.

``import cdbench`` calls :func:`install`, which costs a few microseconds: when transformers' Auto
modules are (or get) imported, ``mplug_owl2`` is added to ``AutoConfig`` (once
``configuration_auto`` is loaded) and to ``AutoModelForCausalLM`` (once ``modeling_auto`` is
loaded), as entries that import the cdbench classes on first lookup (importing them while
transformers is still importing itself would be circular). So
``AutoModelForCausalLM.from_pretrained(released_folder)`` works after ``import cdbench``, while
``import cdbench`` (and ``cdbench --help``) does not pay for importing torch and transformers.
Only the standard library is imported here.
"""

from __future__ import annotations

import importlib.abc
import sys
import warnings

_CONFIG_MODULE = "transformers.models.auto.configuration_auto"
_MODEL_MODULE = "transformers.models.auto.modeling_auto"


_CONFIG_CLASS_MODULE = "cdbench.models.mplug_owl2.configuration"
_PENDING = object()


class _LazyExtra(dict):
    """A transformers ``_extra_content`` mapping whose pending entries import their class on first use.
    Subclasses name the class (``_load``) and may add entries just before a lookup (``_sync``)."""

    @staticmethod
    def _load():
        raise NotImplementedError

    def _sync(self) -> None:
        pass

    def _resolve(self, key):
        value = dict.__getitem__(self, key)
        if value is _PENDING:
            value = self._load()
            dict.__setitem__(self, key, value)
        return value

    def __contains__(self, key):
        self._sync()
        return dict.__contains__(self, key)

    def __getitem__(self, key):
        self._sync()
        return self._resolve(key)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def keys(self):
        self._sync()
        return dict.keys(self)

    def __iter__(self):
        self._sync()
        return dict.__iter__(self)

    def __len__(self):
        self._sync()
        return dict.__len__(self)

    def values(self):
        self._sync()
        return [self._resolve(k) for k in list(dict.keys(self))]

    def items(self):
        self._sync()
        return [(k, self._resolve(k)) for k in list(dict.keys(self))]


class _LazyConfigExtra(_LazyExtra):
    """``CONFIG_MAPPING._extra_content`` whose ``"mplug_owl2"`` entry imports our config class on first use."""

    @staticmethod
    def _load():
        from cdbench.models.mplug_owl2.configuration import MPLUGOwl2Config

        return MPLUGOwl2Config


class _LazyModelExtra(_LazyExtra):
    """``MODEL_FOR_CAUSAL_LM_MAPPING._extra_content`` that maps our config class (once it is imported) to
    ``MPLUGOwl2LlamaForCausalLM``, importing the model code on first lookup."""

    @staticmethod
    def _load():
        from cdbench.models.mplug_owl2.modeling import MPLUGOwl2LlamaForCausalLM

        return MPLUGOwl2LlamaForCausalLM

    def _sync(self) -> None:
        module = sys.modules.get(_CONFIG_CLASS_MODULE)
        config_class = getattr(module, "MPLUGOwl2Config", None) if module is not None else None
        if config_class is not None and not dict.__contains__(self, config_class):
            dict.__setitem__(self, config_class, _PENDING)


def _register_config(module) -> None:
    mapping = module.CONFIG_MAPPING
    if not isinstance(mapping._extra_content, _LazyConfigExtra):
        mapping._extra_content = _LazyConfigExtra(mapping._extra_content)
    if not dict.__contains__(mapping._extra_content, "mplug_owl2"):
        dict.__setitem__(mapping._extra_content, "mplug_owl2", _PENDING)


def _register_model(module) -> None:
    mapping = module.MODEL_FOR_CAUSAL_LM_MAPPING
    if not isinstance(mapping._extra_content, _LazyModelExtra):
        mapping._extra_content = _LazyModelExtra(mapping._extra_content)


_CALLBACKS = {_CONFIG_MODULE: _register_config, _MODEL_MODULE: _register_model}


def _run(name: str, module) -> None:
    try:
        _CALLBACKS[name](module)
    except Exception as e:  # noqa: BLE001 - never break the import of transformers itself
        warnings.warn(f"cdbench could not register mplug_owl2 with transformers ({type(e).__name__}: {e})",
                      stacklevel=2)


class _Loader(importlib.abc.Loader):
    def __init__(self, loader, name: str):
        self._loader = loader
        self._name = name

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _run(self._name, module)

    def __getattr__(self, item):  # get_code, get_source, ... for tools that ask the loader
        return getattr(self._loader, item)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in _CALLBACKS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, fullname)
                return spec
        return None


_installed = False


def install() -> None:
    """Register now for the Auto modules already imported, and hook the ones imported later (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    for name in _CALLBACKS:
        if name in sys.modules:
            _run(name, sys.modules[name])
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def register_auto_classes() -> None:
    """Register ``mplug_owl2`` with ``AutoConfig`` and ``AutoModelForCausalLM`` now (imports transformers)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from cdbench.models.mplug_owl2.configuration import MPLUGOwl2Config
    from cdbench.models.mplug_owl2.modeling import MPLUGOwl2LlamaForCausalLM

    AutoConfig.register("mplug_owl2", MPLUGOwl2Config, exist_ok=True)
    AutoModelForCausalLM.register(MPLUGOwl2Config, MPLUGOwl2LlamaForCausalLM, exist_ok=True)
