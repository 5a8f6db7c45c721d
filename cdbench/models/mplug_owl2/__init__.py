"""mPLUG-Owl2 (Q-Align / CD-Reasoning) natively on current transformers, registered with the Auto classes.

``import cdbench`` registers ``model_type: mplug_owl2`` with ``AutoConfig`` and
``AutoModelForCausalLM`` (lazily, see ``_auto``), so released checkpoint folders load with
``AutoModelForCausalLM.from_pretrained(folder)`` (no ``trust_remote_code``, no network).

The names below are imported on first use, so importing this package stays light.
"""

from __future__ import annotations

import importlib

from cdbench.models.mplug_owl2._auto import install as _install_auto
from cdbench.models.mplug_owl2._auto import register_auto_classes

_EXPORTS = {
    "MPLUGOwl2Config": "configuration",
    "IMAGE_TOKEN_INDEX": "modeling",
    "IGNORE_INDEX": "modeling",
    "MPLUGOwl2LlamaForCausalLM": "modeling",
    "MPLUGOwl2LlamaModel": "modeling",
    "MultimodalInputs": "modeling",
    "MPLUGOwl2ImageProcessor": "image_processing",
    "build_tiny_mplug_owl2": "tiny",
    "build_tiny_tokenizer": "tiny",
    "load_lora_model": "lora",
    "is_lora_folder": "lora",
    "Conversation": "conversation",
    "build_prompt": "conversation",
    "tokenizer_image_token": "conversation",
    "DEFAULT_IMAGE_TOKEN": "conversation",
    "load_tokenizer": "tokenization",
    "sentencepiece_compatible": "tokenization",
}

__all__ = [*_EXPORTS, "register_auto_classes"]

_install_auto()


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
