"""mPLUG-Owl2 (Q-Align / CD-Reasoning) natively on current transformers, registered with the Auto classes.

``import cdbench.models.mplug_owl2`` registers ``model_type: mplug_owl2`` with ``AutoConfig`` and
``AutoModelForCausalLM``, so released checkpoint folders load with
``AutoModelForCausalLM.from_pretrained(folder)`` (no ``trust_remote_code``, no network).
"""

from __future__ import annotations

from cdbench.models.mplug_owl2.configuration import MPLUGOwl2Config
from cdbench.models.mplug_owl2.modeling import (
    IGNORE_INDEX,
    IMAGE_TOKEN_INDEX,
    MPLUGOwl2LlamaForCausalLM,
    MPLUGOwl2LlamaModel,
    MultimodalInputs,
)
from cdbench.models.mplug_owl2.tiny import build_tiny_mplug_owl2, build_tiny_tokenizer


def register_auto_classes() -> None:
    """Register ``mplug_owl2`` with ``AutoConfig`` and ``AutoModelForCausalLM`` (idempotent)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    AutoConfig.register("mplug_owl2", MPLUGOwl2Config, exist_ok=True)
    AutoModelForCausalLM.register(MPLUGOwl2Config, MPLUGOwl2LlamaForCausalLM, exist_ok=True)


register_auto_classes()

__all__ = [
    "IGNORE_INDEX",
    "IMAGE_TOKEN_INDEX",
    "MPLUGOwl2Config",
    "MPLUGOwl2LlamaForCausalLM",
    "MPLUGOwl2LlamaModel",
    "MultimodalInputs",
    "build_tiny_mplug_owl2",
    "build_tiny_tokenizer",
    "register_auto_classes",
]
