"""Multimodal-LLM colour-difference models: Q-Align level scoring and CD-Reasoning descriptions.

Importing this package registers the folder loaders (mPLUG-Owl2 / Q-Align / CD-Reasoning folders,
any Hugging Face image-text-to-text folder) with :func:`cdbench.create_model`; it needs neither
torch nor transformers until a model is created. The classes are imported on first access:

- :class:`MLLMSettings` (``settings``): level words, prompts, decoding options with defaults;
- :class:`MPLUGOwl2CDModel` (``mplug``) and :class:`HFVisionLanguageCDModel` (``hf_vlm``);
- :func:`predict_sharded` (``distributed``): a split across ``torchrun`` ranks, one merged file.
"""

from __future__ import annotations

import importlib

from cdbench.models.mllm import loaders  # noqa: F401  (registers the folder loaders)

_LAZY = {
    "MLLMSettings": "cdbench.models.mllm.settings",
    "LLMCDModel": "cdbench.models.mllm.llm_model",
    "MPLUGOwl2CDModel": "cdbench.models.mllm.mplug",
    "HFVisionLanguageCDModel": "cdbench.models.mllm.hf_vlm",
    "level_token_ids": "cdbench.models.mllm.level_scoring",
    "predict_sharded": "cdbench.models.mllm.distributed",
    "shard_range": "cdbench.models.mllm.distributed",
    "build_tiny_llava": "cdbench.models.mllm.tiny",
    "build_tiny_gemma3": "cdbench.models.mllm.tiny",
    "build_tiny_idefics3": "cdbench.models.mllm.tiny",
    "build_tiny_qwen2_vl": "cdbench.models.mllm.tiny",
    "qwen2_vl_image_processor": "cdbench.models.mllm.hf_vlm",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
