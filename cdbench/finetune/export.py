"""Exporting a trained model: a merged checkpoint folder, and the CD-Reasoning LoRA release layout.

``merged/``: the full weights (LoRA merged into the base, W' = W + (alpha / r) * B A, Hu et al.
2021, Eq. 3; the merge is done in float32 and the result stored in the base checkpoint's dtype),
``save_pretrained`` format (safetensors) with the base folder's tokenizer / processor files, so
``cdbench.create_model("OUT/merged")`` and ``AutoModel*.from_pretrained`` load it as they load the
base model. ``finetune.json`` records the base, the data, the settings, the steps and the versions.

``lora/`` (LoRA runs): the layout Q-Align / CD-Reasoning's training script writes and its
``builder.py`` reads (``../shared/fixtures/mplug-owl2-tiny/README.md``):

- ``config.json``: the full model config;
- ``adapter_config.json``: peft ``LoraConfig`` (``peft_type: LORA``, ``task_type: CAUSAL_LM``, r,
  ``lora_alpha``, ``lora_dropout``, ``bias``, ``fan_in_fan_out: false``, the explicit list of
  ``target_modules``), with ``base_model_name_or_path`` pointing at the base folder;
- ``adapter_model.bin``: the LoRA weights, keys ``base_model.model.<module>.lora_A.weight`` /
  ``lora_B.weight`` (no adapter name), a plain dict of tensors (readable with
  ``torch.load(weights_only=True)`` and by peft 0.4);
- ``non_lora_trainables.bin``: every trained non-LoRA parameter (the visual abstractor with
  ``tune_visual_abstractor``), keys ``base_model.model.<parameter name>``;
- the tokenizer / preprocessor files, ``trainer_state.json`` and a ``README.md``.
"""

from __future__ import annotations

import io
import json
import shutil
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from cdbench.finetune.config import FinetuneConfig
from cdbench.io import atomic_directory, atomic_write_bytes, atomic_write_json, atomic_write_text

MERGED_DIR = "merged"
LORA_DIR = "lora"
ADAPTER_WEIGHTS = "adapter_model.bin"
NON_LORA_WEIGHTS = "non_lora_trainables.bin"

_SIDE_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
               "added_tokens.json", "vocab.json", "merges.txt", "preprocessor_config.json",
               "processor_config.json", "chat_template.jinja", "chat_template.json", "video_preprocessor_config.json")
"""Files of the base folder that are not weights or config and travel with every export."""


def copy_side_files(base: str | Path, dest: Path) -> list[str]:
    """Copy the tokenizer / processor files of ``base`` into ``dest``; returns their names."""
    copied = []
    for name in _SIDE_FILES:
        src = Path(base) / name
        if src.is_file():
            shutil.copy2(src, dest / name)
            copied.append(name)
    return copied


def base_dtype(base: str | Path):
    """The dtype the base checkpoint is stored in (``config.json`` ``dtype`` / ``torch_dtype``), float32
    when it does not say."""
    import torch

    try:
        cfg = json.loads((Path(base) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cfg = {}
    name = str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32").replace("torch.", "")
    return getattr(torch, name, torch.float32) if name in ("float32", "float16", "bfloat16") else torch.float32


def _torch_save_bytes(obj: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def lora_state_dicts(peft_model: Any, dtype=None) -> tuple[dict, dict]:
    """(adapter weights, non-LoRA trainables) with the release key names, on CPU."""
    from peft.utils import get_peft_model_state_dict

    def cpu(t):
        t = t.detach().to("cpu")
        return (t.to(dtype) if dtype is not None and t.is_floating_point() else t).contiguous().clone()

    adapter = {k: cpu(v) for k, v in get_peft_model_state_dict(peft_model).items()}
    non_lora = {n: cpu(p) for n, p in peft_model.named_parameters() if p.requires_grad and "lora_" not in n}
    return adapter, non_lora


def export_lora_release(peft_model: Any, base: str | Path, dest: str | Path, config: FinetuneConfig,
                        record: dict) -> Path:
    """Write the CD-Reasoning LoRA release folder (see the module docstring) atomically."""
    dest = Path(dest)
    dtype = base_dtype(base)
    adapter, non_lora = lora_state_dicts(peft_model, dtype)
    lora_cfg = peft_model.peft_config["default"]
    targets = sorted(lora_cfg.target_modules) if not isinstance(lora_cfg.target_modules, str) \
        else lora_cfg.target_modules
    adapter_config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": str(Path(base).resolve()),
        "r": int(lora_cfg.r), "lora_alpha": int(lora_cfg.lora_alpha), "lora_dropout": float(lora_cfg.lora_dropout),
        "bias": lora_cfg.bias, "fan_in_fan_out": False, "target_modules": targets, "inference_mode": True,
        "init_lora_weights": True, "modules_to_save": None, "revision": None,
    }
    inner = peft_model.get_base_model()
    with atomic_directory(dest, overwrite=True) as tmp:
        inner.config.use_cache = True
        inner.config.save_pretrained(tmp)
        atomic_write_json(tmp / "adapter_config.json", adapter_config)
        atomic_write_bytes(tmp / ADAPTER_WEIGHTS, _torch_save_bytes(adapter))
        atomic_write_bytes(tmp / NON_LORA_WEIGHTS, _torch_save_bytes(non_lora))
        copy_side_files(base, tmp)
        atomic_write_json(tmp / "trainer_state.json", {"global_step": record.get("global_step"),
                                                       "last_loss": record.get("last_loss")})
        atomic_write_json(tmp / "finetune.json", record)
        atomic_write_text(tmp / "README.md", _card(record, "LoRA adapter (CD-Reasoning release layout)"))
    return dest


def export_merged(model: Any, base: str | Path, dest: str | Path, record: dict, is_lora: bool) -> Path:
    """Merge LoRA (in float32) and write a full checkpoint folder in the base checkpoint's dtype."""
    import torch

    dest = Path(dest)
    dtype = base_dtype(base)
    if is_lora:
        model = model.float().merge_and_unload()
    if hasattr(model, "activation_checkpointing_disable"):  # transformers >= 5.x names
        if model.is_activation_checkpointing:
            model.activation_checkpointing_disable()
    elif getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()
    model = model.to(dtype)
    model.config.use_cache = True
    with atomic_directory(dest, overwrite=True) as tmp, torch.no_grad():
        model.save_pretrained(tmp, safe_serialization=True)
        copy_side_files(base, tmp)
        atomic_write_json(tmp / "finetune.json", record)
        atomic_write_text(tmp / "README.md", _card(record, "merged weights"))
    return dest


def _card(record: dict, what: str) -> str:
    cfg = record.get("config", {})
    return (f"# Fine-tuned with cdbench ({what})\n\n"
            f"- base model: `{record.get('base_model')}`\n- data: `{record.get('dataset')}` "
            f"(split `{cfg.get('split')}`, tasks {cfg.get('tasks')})\n"
            f"- method: {cfg.get('method')} (r {cfg.get('lora_r')}, alpha {cfg.get('lora_alpha')}), "
            f"lr {cfg.get('learning_rate')}, {record.get('global_step')} steps, last loss {record.get('last_loss')}\n"
            "- settings and versions: `finetune.json`\n")


def _dtype_key(dtype) -> str:
    import torch

    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def _gather_trained_deepspeed(accelerator: Any, model: Any) -> dict:
    """The trained parameters of a DeepSpeed engine, whole, in float32, on CPU, on the main process (empty
    elsewhere); every process must call it.

    Each parameter is the optimizer's float32 master copy (``deepspeed.utils.safe_get_full_fp32_param``,
    assembled from the ZeRO partitions, one parameter at a time, a collective): with ``bf16`` / ``fp16``
    DeepSpeed trains a low-precision copy of the module, and exporting that copy would round every trained
    weight. Only the trained parameters are ever whole in memory, so ``zero3_save_16bit_model`` is not
    needed. A parameter the optimizer does not map falls back to ``deepspeed.zero.GatheredParameters``.
    """
    import deepspeed
    import torch
    from deepspeed.utils import safe_get_full_fp32_param

    out = {}
    for name, p in accelerator.unwrap_model(model).named_parameters():
        if not p.requires_grad:
            continue
        full = safe_get_full_fp32_param(p)
        if full is not None:
            if accelerator.is_main_process:
                out[name] = full.detach().to("cpu", torch.float32, copy=True)
            continue
        with deepspeed.zero.GatheredParameters([p], modifier_rank=None):
            if accelerator.is_main_process:
                out[name] = p.detach().to("cpu", torch.float32, copy=True)
    return out


@contextmanager
def _no_zero3_init(accelerator: Any):
    """Build models normally inside (no ``deepspeed.zero.Init``).

    Under a ZeRO-3 config, accelerate registers the DeepSpeed config with ``transformers``, whose
    ``from_pretrained`` then partitions every parameter it creates, a collective over all processes:
    the main process alone rebuilding the model for the export would wait for the others for ever.
    """
    from transformers.integrations.deepspeed import set_hf_deepspeed_config, unset_hf_deepspeed_config

    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if plugin is not None and getattr(plugin, "dschf", None) is not None:
            set_hf_deepspeed_config(plugin.dschf)


def _gather_trained(accelerator: Any, model: Any) -> dict:
    """The full (unsharded) weights on the main process, on CPU; every process must call it. With FSDP2
    and DeepSpeed only the trained parameters are gathered (the frozen ones are re-read from the base
    checkpoint), so a LoRA export does not assemble the whole base model in memory."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return _gather_trained_deepspeed(accelerator, model)
    if getattr(accelerator, "is_fsdp2", False):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
        return get_model_state_dict(model, options=options)
    return accelerator.get_state_dict(model)


def export_all(accelerator: Any, model: Any, config: FinetuneConfig, family: str, record: dict) -> dict[str, str]:
    """Write the exports of ``config.export`` from a prepared (possibly sharded) model.

    Every process must call it (ZeRO-3 / FSDP gather the full weights); the main process writes.
    When the model was trained from a lower-precision copy of the base (LoRA in bf16 over a float32
    checkpoint) or sharded, the exports are built from the base checkpoint re-read at its own
    precision plus the trained parameters, so frozen weights are exported exactly as released.
    """
    from accelerate.utils import DistributedType

    sharded = accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)
    state = _gather_trained(accelerator, model) if sharded else None
    exports: dict[str, str] = {}
    if accelerator.is_main_process:
        out = Path(config.out)
        trained = accelerator.unwrap_model(model)
        storage = config.precision if config.is_lora else "fp32"
        stored = _dtype_key(base_dtype(config.model))
        if sharded or storage != stored:  # rebuild on CPU: base at its own precision + trained parameters
            from cdbench.finetune.model_setup import load_base_model, prepare_for_training

            with _no_zero3_init(accelerator) if accelerator.distributed_type == DistributedType.DEEPSPEED \
                    else nullcontext():
                cpu_model = load_base_model(config.model, family, dtype=stored,
                                            attn_implementation=config.attn_implementation)
                cpu_model, _ = prepare_for_training(cpu_model, config.replace(gradient_checkpointing=False),
                                                    family)
            if state is None:
                state = {n: p.detach().to("cpu") for n, p in trained.named_parameters() if p.requires_grad}
            keep = {n for n, p in cpu_model.named_parameters() if p.requires_grad}
            missing = keep - set(state)
            if missing:
                raise RuntimeError(f"trained parameters missing from the gathered weights: {sorted(missing)[:3]}")
            cpu_model.load_state_dict({k: v for k, v in state.items() if k in keep}, strict=False)
        else:
            cpu_model = trained
        cpu_model.eval()
        if config.is_lora and "lora" in config.export:
            exports["lora"] = str(export_lora_release(cpu_model, config.model, out / LORA_DIR, config, record))
        if "merged" in config.export:
            exports["merged"] = str(export_merged(cpu_model, config.model, out / MERGED_DIR, record, config.is_lora))
    accelerator.wait_for_everyone()
    return exports
