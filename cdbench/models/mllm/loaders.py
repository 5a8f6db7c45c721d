"""Folder detection and the registry entries of the LLM models (no heavy imports here).

``cdbench.create_model(folder)`` recognises:
- mPLUG-Owl2 folders (``config.json`` with ``model_type: mplug_owl2``): Q-Align, CD-Reasoning,
  including LoRA release folders (peft adapter + ``non_lora_trainables.bin``), loaded by
  :class:`~cdbench.models.mllm.mplug.MPLUGOwl2CDModel`;
- any other folder with a ``config.json`` and a processor/preprocessor config whose model type is a
  Hugging Face image-text-to-text architecture, loaded by
  :class:`~cdbench.models.mllm.hf_vlm.HFVisionLanguageCDModel`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cdbench.models.registry import register_folder_loader

MPLUG_OWL2_MODEL_TYPE = "mplug_owl2"
_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "chat_template.jinja", "chat_template.json")


def read_folder_config(folder: Path) -> dict[str, Any] | None:
    """The folder's ``config.json`` as a dict, or None when absent or not a JSON object."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return None
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) else None


def is_mplug_owl2_folder(folder: Path) -> bool:
    """A Q-Align / CD-Reasoning / mPLUG-Owl2 checkpoint folder (full or LoRA release)."""
    cfg = read_folder_config(folder)
    return cfg is not None and cfg.get("model_type") == MPLUG_OWL2_MODEL_TYPE


def is_lora_release_folder(folder: Path) -> bool:
    """A LoRA release folder: a peft adapter (``adapter_config.json``) next to the config."""
    return (Path(folder) / "adapter_config.json").is_file()


def is_image_text_to_text_folder(folder: Path) -> bool:
    """A Hugging Face image-text-to-text checkpoint (LLaVA, Qwen2-VL, Idefics, ...) with its processor."""
    cfg = read_folder_config(folder)
    if cfg is None or cfg.get("model_type") in (None, MPLUG_OWL2_MODEL_TYPE):
        return False
    if not any((Path(folder) / f).is_file() for f in _PROCESSOR_FILES):
        return False
    try:
        from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    except ImportError:  # transformers missing: claim the folder, the factory reports the missing extra
        return True
    return cfg["model_type"] in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def _require_transformers() -> None:
    try:
        import transformers  # noqa: F401
    except ImportError:
        from cdbench.errors import ModelError

        raise ModelError("LLM models need transformers: pip install 'cdbench[mllm]'") from None


def trained_prompt_defaults(folder: Path) -> dict[str, Any]:
    """Prompt settings a ``cdbench finetune`` export recorded in its ``finetune.json`` (the image
    position it was trained with), so the model is scored with the layout it learned; options given to
    ``create_model`` override them. Empty for any other folder."""
    path = Path(folder) / "finetune.json"
    if not path.is_file():
        return {}
    try:
        cfg = json.loads(path.read_text(encoding="utf-8")).get("config", {})
    except (OSError, ValueError, AttributeError):
        return {}
    pos = cfg.get("image_position") if isinstance(cfg, dict) else None
    return {"image_position": pos} if pos in ("before", "after") else {}


@register_folder_loader("mplug-owl2 (Q-Align / CD-Reasoning)", is_mplug_owl2_folder)
def load_mplug_owl2_folder(folder: Path, **options: Any):
    """``create_model`` factory of mPLUG-Owl2 folders."""
    _require_transformers()
    from cdbench.models.mllm.mplug import MPLUGOwl2CDModel

    return MPLUGOwl2CDModel(folder, **{**trained_prompt_defaults(folder), **options})


@register_folder_loader("hf image-text-to-text", is_image_text_to_text_folder)
def load_image_text_to_text_folder(folder: Path, **options: Any):
    """``create_model`` factory of Hugging Face image-text-to-text folders."""
    _require_transformers()
    from cdbench.models.mllm.hf_vlm import HFVisionLanguageCDModel

    return HFVisionLanguageCDModel(folder, **{**trained_prompt_defaults(folder), **options})
