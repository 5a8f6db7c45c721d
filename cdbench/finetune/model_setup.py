"""Loading the base model for training and choosing what is trained (LoRA targets, frozen parts).

What the CD-Reasoning / Q-Align LoRA recipe trains (``q_align/train/train.py``):

- LoRA adapters on ``find_all_linear_names(model)``: every linear layer outside the vision parts
  whose name contains ``q_proj`` or ``v_proj.multiway.1``, i.e. per LLM layer ``self_attn.q_proj``
  and the *visual* value projection ``self_attn.v_proj.multiway.1`` of the modality-adaptive
  module (k_proj, o_proj, the MLP and the text value projection stay frozen);
- the visual abstractor fully (``tune_visual_abstractor``), the vision encoder frozen
  (``freeze_vision_model``), everything else frozen.

For a Hugging Face image-text-to-text model the analogous choice is made: LoRA on the language
model's ``q_proj`` and ``v_proj``, the multimodal projector trained (the counterpart of the
abstractor), the vision tower frozen. Full fine-tuning trains every parameter, the vision encoder
optionally frozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdbench.errors import ModelError
from cdbench.finetune.config import FinetuneConfig

# attribute paths of the parts of known architectures, looked up on the model (first match wins)
_VISION_NAMES = ("vision_model", "vision_tower", "visual", "vision_encoder", "vision")
_PROJECTOR_NAMES = ("visual_abstractor", "multi_modal_projector", "mm_projector", "visual.merger", "connector",
                    "vision_projection", "multimodal_projector")


@dataclass
class ModelParts:
    """Dotted module-name prefixes of the vision encoder and of the projector / abstractor."""

    vision: list[str]
    projector: list[str]

    def is_vision(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.vision)

    def is_projector(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.projector)


def model_family(folder: str | Path) -> str:
    """``mplug_owl2`` for mPLUG-Owl2 / Q-Align / CD-Reasoning folders, ``hf_vlm`` for other
    image-text-to-text folders; a ModelError for anything else."""
    from cdbench.models.mllm.loaders import is_image_text_to_text_folder, is_mplug_owl2_folder

    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: base model folder not found")
    if is_mplug_owl2_folder(folder):
        return "mplug_owl2"
    if is_image_text_to_text_folder(folder):
        return "hf_vlm"
    raise ModelError(f"{folder}: not an mPLUG-Owl2 or Hugging Face image-text-to-text checkpoint folder "
                     "(config.json with model_type, plus a processor for HF models)")


def find_parts(model: Any) -> ModelParts:
    """The vision encoder and projector prefixes of ``model`` (module names as in ``named_modules``)."""
    names = {n for n, _ in model.named_modules()}
    vision, projector = [], []
    for n in sorted(names, key=len):
        leaf = n.rsplit(".", 1)[-1]
        two = ".".join(n.rsplit(".", 2)[-2:])
        covered = any(n.startswith(p + ".") for p in vision + projector)
        if covered:
            continue
        if two in _PROJECTOR_NAMES or leaf in _PROJECTOR_NAMES:
            projector.append(n)
        elif leaf in _VISION_NAMES:
            vision.append(n)
    # a projector nested inside the vision module (Qwen2-VL's visual.merger) stays a projector
    for n in sorted(names):
        if any(n.startswith(v + ".") for v in vision) and ".".join(n.rsplit(".", 2)[-2:]) in _PROJECTOR_NAMES:
            projector.append(n)
    return ModelParts(vision=vision, projector=projector)


def default_lora_targets(model: Any, family: str, parts: ModelParts) -> list[str]:
    """Full names of the linear layers the recipe adapts (see the module docstring)."""
    import torch

    suffixes = (".q_proj", ".v_proj.multiway.1") if family == "mplug_owl2" else (".q_proj", ".v_proj")
    out = []
    for name, module in model.named_modules():
        if parts.is_vision(name) or parts.is_projector(name) or not isinstance(module, torch.nn.Linear):
            continue
        if name.endswith(suffixes):
            out.append(name)
    if not out:
        raise ModelError(f"no LoRA target modules (names ending {', '.join(suffixes)}) found in the language "
                         "model; set lora_target_modules")
    return sorted(out)


def resolve_lora_targets(model: Any, requested: tuple[str, ...]) -> list[str]:
    """Full names of the linear layers matching ``requested`` (full names or dotted suffixes)."""
    import torch

    out = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and any(name == t or name.endswith("." + t) for t in requested):
            out.append(name)
    if not out:
        raise ModelError(f"lora_target_modules {list(requested)} match no linear layer of the model")
    return sorted(out)


_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def load_base_model(folder: str | Path, family: str, *, dtype: str = "fp32", attn_implementation: str | None = "sdpa"):
    """The base model on CPU in ``dtype`` (``bf16``/``fp16``/``fp32``), from a local folder only."""
    import torch

    folder = Path(folder)
    kw: dict[str, Any] = {"dtype": getattr(torch, _DTYPES[dtype]), "local_files_only": True}
    if attn_implementation:
        kw["attn_implementation"] = attn_implementation
    try:
        if family == "mplug_owl2":
            from transformers import AutoModelForCausalLM

            import cdbench.models.mplug_owl2  # noqa: F401  (registers the Auto classes)

            return AutoModelForCausalLM.from_pretrained(folder, **kw)
        from transformers import AutoModelForImageTextToText

        return AutoModelForImageTextToText.from_pretrained(folder, **kw)
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"{folder}: cannot load the base model ({e})") from None


def prepare_for_training(model: Any, config: FinetuneConfig, family: str) -> tuple[Any, dict]:
    """Freeze / unfreeze parts, add LoRA adapters, enable gradient checkpointing.

    Returns the (possibly peft-wrapped) model and a summary: LoRA targets, trainable parameter
    counts per part. Trainable non-LoRA parameters are kept in float32 (master weights; the forward
    runs under autocast), LoRA weights too (peft ``autocast_adapter_dtype``).
    """
    import torch

    parts = find_parts(model)
    if family == "mplug_owl2":  # recorded in config.json as the original training script does; the scorer reads it
        aspect = config.aspect_mode(family)
        model.config.image_aspect_ratio = None if aspect == "none" else aspect
        model.config.tune_visual_abstractor = bool(config.tune_visual_abstractor)
        model.config.freeze_vision_model = bool(config.vision_frozen)
    if config.gradient_checkpointing:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise ModelError(f"{type(model).__name__} does not support gradient checkpointing; "
                             "set gradient_checkpointing: false")
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(model, "config"):  # no KV cache while training (nested text configs too)
        model.config.use_cache = False
        text = model.config.get_text_config() if hasattr(model.config, "get_text_config") else None
        if text is not None:
            text.use_cache = False
    targets: list[str] = []
    if config.is_lora:
        from peft import LoraConfig, get_peft_model

        targets = (resolve_lora_targets(model, config.lora_target_modules) if config.lora_target_modules
                   else default_lora_targets(model, family, parts))
        model.requires_grad_(False)
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          bias=config.lora_bias, target_modules=targets, task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
        inner = model.get_base_model()
    else:
        model.requires_grad_(True)
        inner = model
    # the vision encoder, then the projector (which may sit inside it, Qwen2-VL's visual.merger)
    for name, module in inner.named_modules():
        if parts.is_vision(name) and name in parts.vision:
            module.requires_grad_(not config.vision_frozen)
    for name, module in inner.named_modules():
        if name in parts.projector:
            module.requires_grad_(bool(config.tune_visual_abstractor) or not config.is_lora)
    # trainable parameters in float32 (master weights), frozen ones stay in the storage dtype; parameters
    # that DeepSpeed ZeRO-3 partitioned at load (``ds_id``) are left alone: DeepSpeed keeps their float32
    # master partitions itself
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32 and not hasattr(p, "ds_id"):
            p.data = p.data.float()
    summary = {"family": family, "lora_targets": targets, "vision": parts.vision, "projector": parts.projector,
               **count_parameters(model)}
    if summary["trainable_parameters"] == 0:
        raise ModelError("nothing to train: every parameter is frozen with these settings")
    return model, summary


def count_parameters(model: Any) -> dict[str, int]:
    """Total and trainable parameter counts (LoRA included); for parameters DeepSpeed ZeRO-3 partitioned
    (their local tensor is empty) the full size, ``ds_numel``."""
    total = trainable = 0
    for p in model.parameters():
        n = int(getattr(p, "ds_numel", p.numel()))
        total += n
        trainable += n if p.requires_grad else 0
    return {"total_parameters": total, "trainable_parameters": trainable}
