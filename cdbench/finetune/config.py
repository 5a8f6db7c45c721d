"""Every setting of a fine-tuning run, with the CD-Reasoning recipe as the defaults.

The defaults reproduce the training recipe of CD-Reasoning (Wang et al., "Harnessing Multi-modal
Large Language Models for Measuring and Interpreting Color Differences", IEEE TIP 2025), which is
Q-Align's LoRA recipe (Wu et al., ICML 2024; ``q_align/train/train.py``) run on M-SPCD with the
CD-Reasoning script ``scripts/finetune_lora.sh``:

- LoRA through peft on the LLM's ``q_proj`` and the *visual* value projection ``v_proj.multiway.1``
  of every decoder layer (``find_all_linear_names``), r 128, alpha 256, dropout 0.05, bias none;
  the visual abstractor fully trained (``tune_visual_abstractor``), the vision encoder frozen;
- AdamW (``adamw_torch``: betas 0.9/0.999, eps 1e-8), learning rate 2e-4, no weight decay, cosine
  schedule with 3% linear warm-up (``ceil(0.03 * steps)`` steps, as ``transformers.Trainer``),
  gradient clipping at 1.0, one epoch, 32 pairs per device, bf16, tf32, gradient checkpointing,
  ``model_max_length`` 2048, images padded to a square with the CLIP mean colour (``pad``),
  a checkpoint every 1,000 steps, the last 3 kept.

Note on the vision / abstractor flags: CD-Reasoning's published ``finetune_lora.sh`` passes
``--tune_visual_abstractor False --freeze_vision_model False``, which contradicts the released LoRA
folders (``non_lora_trainables.bin`` holds the visual abstractor and nothing of the vision
encoder) and Q-Align's LoRA defaults; cdbench follows the released checkpoints (abstractor trained,
vision frozen). Both are settings (``tune_visual_abstractor``, ``freeze_vision_model``).

Runs are configured by this dataclass, from YAML (``--config train.yaml``) and/or the command line;
:meth:`FinetuneConfig.from_yaml` rejects unknown keys naming them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cdbench.errors import DataError

METHODS = ("lora", "full")
PRECISIONS = ("bf16", "fp16", "fp32")
SCHEDULERS = ("cosine", "linear", "constant_with_warmup", "constant")
ASPECT_MODES = ("auto", "pad", "resize", "none")
IMAGE_POSITIONS = ("before", "after")
EXPORTS = ("merged", "lora")
TASKS = ("scores", "descriptions")


@dataclass
class FinetuneConfig:
    """The settings of one fine-tuning run (defaults: the CD-Reasoning recipe)."""

    # what to train, on what, where to write
    model: str = ""
    """Base model folder: an mPLUG-Owl2 / Q-Align checkpoint or any HF image-text-to-text model."""
    dataset: str = ""
    """M-SPCD dataset folder (built by ``cdbench build m-spcd``) or your own pairs in the same format."""
    out: str = ""
    """Output folder: ``checkpoints/``, ``train_log.jsonl``, ``merged/`` and ``lora/``."""
    split: str = "train"
    tasks: tuple[str, ...] = TASKS
    """Configs mixed into the training set: ``scores`` (level answers) and ``descriptions``."""
    max_items: int | None = None
    """Use only the first N items of the mixed set (smoke runs)."""

    # method
    method: Literal["lora", "full"] = "lora"
    lora_r: int = 128
    lora_alpha: int = 256
    lora_dropout: float = 0.05
    lora_bias: Literal["none", "all", "lora_only"] = "none"
    lora_target_modules: tuple[str, ...] | None = None
    """Full module names or name suffixes; None = the recipe's modules for the architecture
    (mPLUG-Owl2: ``q_proj`` and ``v_proj.multiway.1`` of the LLM; HF VLMs: the LLM's ``q_proj``/``v_proj``)."""
    tune_visual_abstractor: bool = True
    """Train the visual abstractor (mPLUG-Owl2) / the multimodal projector (HF VLMs) fully."""
    freeze_vision_model: bool | None = None
    """Freeze the vision encoder; None = frozen with LoRA (Q-Align's default), trained with ``full``."""

    # optimisation
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    lr_scheduler: Literal["cosine", "linear", "constant_with_warmup", "constant"] = "cosine"
    warmup_ratio: float = 0.03
    num_train_epochs: float = 1.0
    max_steps: int | None = None
    """Optimizer steps; None = ``num_train_epochs`` over the training set."""
    per_device_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    seed: int = 42

    # numerics and memory
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    """Mixed precision (autocast); with LoRA the frozen base weights are also stored in this dtype."""
    tf32: bool = True
    gradient_checkpointing: bool = True
    attn_implementation: str | None = "sdpa"
    model_max_length: int = 2048
    image_aspect_ratio: Literal["auto", "pad", "resize", "none"] = "auto"
    """``pad``: pad each image to a square with the processor's mean colour first (the recipe);
    ``resize``: stretch to a square; ``none``: the processor's own resize / crop only. ``auto``: ``pad``
    for mPLUG-Owl2 (recorded in the exported ``config.json``, which the scorer reads), ``none`` for
    HF image-text-to-text models (their processors and the scorer do not pad)."""

    image_position: Literal["before", "after"] = "before"
    """Where the two images go in the user turn: ``before`` the prompt (``<img><img>\\n<question>``, the
    M-SPCD training conversations) or ``after`` it (CD-Reasoning's evaluation prompt and the cdbench
    scorers' default). The exports record it in ``finetune.json``, and ``create_model`` on an exported
    folder scores with the position the model was trained with unless told otherwise."""

    # data loading
    dataloader_num_workers: int = 4
    group_by_length: bool = True
    """Group the items of each optimizer step by length (less padding; the recipe's
    ``group_by_modality_length``). Which items form a step, and so the result, is unchanged."""

    # checkpoints, logging, output
    save_steps: int = 1000
    save_total_limit: int | None = 3
    logging_steps: int = 1
    resume: bool = True
    """Continue from the newest checkpoint in ``out/checkpoints`` when there is one."""
    export: tuple[str, ...] = EXPORTS
    """Final outputs: ``merged`` (full weights, ``cdbench.create_model(out/merged)``) and ``lora``
    (the CD-Reasoning release layout: adapter + ``non_lora_trainables.bin``; LoRA runs only)."""
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("tasks", "export"):
            value = getattr(self, name)
            setattr(self, name, (value,) if isinstance(value, str) else tuple(value))
        if self.lora_target_modules is not None:
            t = self.lora_target_modules
            self.lora_target_modules = (t,) if isinstance(t, str) else tuple(t)
        self._check()

    def _check(self) -> None:
        def bad(msg: str) -> DataError:
            return DataError(f"fine-tuning setting {msg}")

        choices = {"method": METHODS, "precision": PRECISIONS, "lr_scheduler": SCHEDULERS,
                   "image_aspect_ratio": ASPECT_MODES, "image_position": IMAGE_POSITIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise bad(f"{name}={getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        for t in self.tasks:
            if t not in TASKS:
                raise bad(f"tasks: unknown task {t!r}; expected {', '.join(TASKS)}")
        if not self.tasks:
            raise bad("tasks: at least one of scores, descriptions")
        for e in self.export:
            if e not in EXPORTS:
                raise bad(f"export: unknown format {e!r}; expected {', '.join(EXPORTS)}")
        positive = ("lora_r", "lora_alpha", "per_device_batch_size", "gradient_accumulation_steps",
                    "save_steps", "logging_steps", "model_max_length")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise bad(f"{name}={getattr(self, name)!r}: must be >= 1")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise bad(f"lora_dropout={self.lora_dropout}: must be in [0, 1)")
        if not 0.0 <= self.warmup_ratio <= 1.0:
            raise bad(f"warmup_ratio={self.warmup_ratio}: must be in [0, 1]")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise bad(f"learning_rate={self.learning_rate}: must be a positive number")
        if self.max_steps is not None and self.max_steps < 1:
            raise bad(f"max_steps={self.max_steps}: must be >= 1")
        if self.num_train_epochs <= 0:
            raise bad(f"num_train_epochs={self.num_train_epochs}: must be > 0")
        if self.dataloader_num_workers < 0:
            raise bad(f"dataloader_num_workers={self.dataloader_num_workers}: must be >= 0")

    # ------------------------------------------------------------------ derived values
    @property
    def is_lora(self) -> bool:
        return self.method == "lora"

    @property
    def vision_frozen(self) -> bool:
        """Whether the vision encoder is frozen (``freeze_vision_model``, or the method's default)."""
        return self.is_lora if self.freeze_vision_model is None else bool(self.freeze_vision_model)

    @property
    def lora_scaling(self) -> float:
        """The LoRA update scale ``alpha / r`` (W' = W + alpha/r * B A; Hu et al. 2021, Eq. 3)."""
        return self.lora_alpha / self.lora_r

    def aspect_mode(self, family: str) -> str:
        """The image aspect handling for a model family (``auto`` resolved)."""
        if self.image_aspect_ratio != "auto":
            return self.image_aspect_ratio
        return "pad" if family == "mplug_owl2" else "none"

    def warmup_steps(self, total_steps: int) -> int:
        """Warm-up steps as ``transformers.Trainer`` computes them: ``ceil(warmup_ratio * total)``."""
        return int(math.ceil(self.warmup_ratio * total_steps))

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-able dict (tuples as lists), recorded in checkpoints and the training log."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def replace(self, **changes: Any) -> FinetuneConfig:
        """A copy with some settings changed (None values are ignored: "not given")."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise DataError(f"unknown fine-tuning setting(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> FinetuneConfig:
        """Build from a dict, rejecting unknown keys by name."""
        if not isinstance(data, dict):
            raise DataError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise DataError(f"{source}: unknown fine-tuning setting(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(names))}")
        try:
            return cls(**data)
        except TypeError as e:
            raise DataError(f"{source}: {e}") from None

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> FinetuneConfig:
        """Load a YAML file of settings; ``overrides`` that are not None take precedence."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise DataError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
        return cls.from_dict(data, source=str(path))


def default_config_yaml() -> str:
    """The defaults as a commented YAML document (``cdbench finetune --print-config``)."""
    import yaml

    return ("# cdbench finetune settings (defaults: the CD-Reasoning / Q-Align LoRA recipe)\n"
            + yaml.safe_dump(FinetuneConfig().to_dict(), sort_keys=False))


__all__ = ["FinetuneConfig", "default_config_yaml", "METHODS", "PRECISIONS", "SCHEDULERS", "TASKS", "EXPORTS"]
