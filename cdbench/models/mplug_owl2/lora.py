"""Q-Align / CD-Reasoning LoRA releases -> one merged ``MPLUGOwl2LlamaForCausalLM`` (with peft).

A LoRA folder written by the original training script (``lora_enable=True``) holds ``config.json``,
``adapter_config.json`` (peft ``LoraConfig``, targets ``self_attn.q_proj`` and the VISUAL value
projection ``self_attn.v_proj.multiway.1`` of every LLM layer), ``adapter_model.bin`` (LoRA weights)
and ``non_lora_trainables.bin`` (the whole visual abstractor, keys
``base_model.model.model.visual_abstractor.*``). The original ``builder.py`` loads the base model with
the LoRA folder's config, loads ``non_lora_trainables`` over it (``strict=False``), wraps it with
``PeftModel.from_pretrained`` and merges: ``W' = W + (lora_alpha / r) B A`` (Hu et al., "LoRA", ICLR
2022). This module does the same, offline, every pickle read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cdbench.errors import ModelError

NON_LORA_FILES = ("non_lora_trainables.safetensors", "non_lora_trainables.bin")
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def is_lora_folder(folder: str | os.PathLike) -> bool:
    """A folder with ``adapter_config.json`` and an adapter weights file."""
    folder = Path(folder)
    return (folder / "adapter_config.json").is_file() and any((folder / f).is_file() for f in ADAPTER_FILES)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path}: missing") from None
    except json.JSONDecodeError as e:
        raise ModelError(f"{path}: not valid JSON ({e})") from None


def load_state_file(path: Path) -> dict:
    """A safetensors file, or a torch pickle read with ``weights_only=True`` (never arbitrary objects)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise ModelError(
            f"{path}: cannot be read as a weights-only torch state dict ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise ModelError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
    return state


def non_lora_state_dict(raw: dict) -> dict:
    """Map ``non_lora_trainables`` keys to checkpoint keys as ``builder.py`` does.

    ``base_model.model.model.visual_abstractor.x`` -> strip ``base_model.`` -> ``model.model.visual_abstractor.x``
    -> (keys start with ``model.model.``) strip one ``model.`` -> ``model.visual_abstractor.x``.
    """
    state = {(k[len("base_model."):] if k.startswith("base_model.") else k): v for k, v in raw.items()}
    if any(k.startswith("model.model.") for k in state):
        state = {(k[len("model."):] if k.startswith("model.") else k): v for k, v in state.items()}
    return state


def load_lora_model(lora_folder: str | os.PathLike, base_folder: str | os.PathLike | None = None, *,
                    dtype=None, attn_implementation: str | None = None, device_map=None):
    """Load a Q-Align / CD-Reasoning LoRA release merged into its base model (a plain model, no peft wrapper).

    ``base_folder`` defaults to ``base_model_name_or_path`` of ``adapter_config.json`` when that is a local
    folder (nothing is downloaded). ``dtype`` / ``attn_implementation`` / ``device_map`` go to
    ``from_pretrained`` of the base model.
    """
    import torch
    from peft import PeftModel

    from cdbench.models.mplug_owl2.configuration import MPLUGOwl2Config
    from cdbench.models.mplug_owl2.modeling import MPLUGOwl2LlamaForCausalLM

    lora_folder = Path(lora_folder)
    if not is_lora_folder(lora_folder):
        raise ModelError(f"{lora_folder}: not a LoRA folder (needs adapter_config.json and adapter_model.bin "
                         "or adapter_model.safetensors)")
    adapter = _read_json(lora_folder / "adapter_config.json")
    if adapter.get("peft_type", "LORA") != "LORA":
        raise ModelError(f"{lora_folder / 'adapter_config.json'}: peft_type {adapter.get('peft_type')!r}, "
                         "only LORA is supported")
    if base_folder is None:
        base_folder = adapter.get("base_model_name_or_path")
        if not base_folder or not Path(base_folder).is_dir():
            raise ModelError(f"{lora_folder}: the base model {base_folder!r} of adapter_config.json is not a local "
                             "folder; pass base_folder= (the released base checkpoint, e.g. q-future/one-align)")
    base_folder = Path(base_folder)
    config_folder = lora_folder if (lora_folder / "config.json").is_file() else base_folder
    config = MPLUGOwl2Config.from_pretrained(config_folder)
    kwargs = {"config": config}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if device_map is not None:
        kwargs["device_map"] = device_map
    model = MPLUGOwl2LlamaForCausalLM.from_pretrained(base_folder, **kwargs)

    non_lora_path = next((lora_folder / f for f in NON_LORA_FILES if (lora_folder / f).is_file()), None)
    if non_lora_path is not None:
        state = non_lora_state_dict(load_state_file(non_lora_path))
        known = model.state_dict()
        unknown = sorted(k for k in state if k not in known)
        if unknown:
            raise ModelError(f"{non_lora_path}: {len(unknown)} keys the model does not have, e.g. {unknown[:3]}")
        for k, v in state.items():
            if tuple(v.shape) != tuple(known[k].shape):
                raise ModelError(f"{non_lora_path}: {k} has shape {tuple(v.shape)}, the model {tuple(known[k].shape)}")
        with torch.no_grad():
            model.load_state_dict(state, strict=False)

    try:
        peft_model = PeftModel.from_pretrained(model, str(lora_folder), is_trainable=False)
    except (ValueError, KeyError, RuntimeError) as e:
        raise ModelError(f"{lora_folder}: the LoRA adapter does not fit the base model ({e})") from None
    merged = peft_model.merge_and_unload()
    merged.eval()
    return merged
