"""``MPLUGOwl2Config``: the released mPLUG-Owl2 / Q-Align / CD-Reasoning ``config.json`` format.

The file holds the LLaMA-2 fields at top level (``model_type: mplug_owl2``) and the two vision parts
under ``visual_config``: ``visual_model`` (the ViT) and ``visual_abstractor`` (the query-based
abstractor), each a full sub-config dict as the original ``save_pretrained`` writes it. Missing keys
take the original defaults (ViT-L/14 at 448 px, 6-layer abstractor with 64 queries), so a config
written by the original conversion script, by ``MPLUGOwl2Config()`` or by this class loads the same.

Reference: Ye et al., "mPLUG-Owl2: Revolutionizing Multi-modal Large Language Model with Modality
Collaboration", CVPR 2024; config format of the Q-Align / CD-Reasoning releases.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from typing import Any

from transformers.models.llama.configuration_llama import LlamaConfig

VISION_DEFAULTS: dict[str, Any] = {
    "model_type": "mplug_owl_vision_model",
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "projection_dim": 768,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "num_channels": 3,
    "image_size": 448,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-6,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "initializer_factor": 1.0,
    "use_flash_attn": False,
}
"""Defaults of the original ``MplugOwlVisionConfig`` (ViT-L/14, 448 px)."""

ABSTRACTOR_DEFAULTS: dict[str, Any] = {
    "model_type": "mplug_owl_visual_abstract",
    "num_learnable_queries": 64,
    "hidden_size": 1024,
    "num_hidden_layers": 6,
    "num_attention_heads": 16,
    "intermediate_size": 2816,
    "attention_probs_dropout_prob": 0.0,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-6,
    "encoder_hidden_size": 1024,
    "grid_size": 32,
}
"""Defaults of the original ``MplugOwlVisualAbstractorConfig`` (64 queries, 6 layers)."""


def default_visual_config() -> dict[str, dict[str, Any]]:
    """A fresh copy of the original ``DEFAULT_VISUAL_CONFIG``."""
    return {"visual_model": dict(VISION_DEFAULTS), "visual_abstractor": dict(ABSTRACTOR_DEFAULTS)}


@dataclass(frozen=True)
class VisionConfig:
    """The ViT settings the model uses (read from ``visual_config["visual_model"]``)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_channels: int
    image_size: int
    patch_size: int
    layer_norm_eps: float
    attention_dropout: float
    initializer_range: float

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_positions(self) -> int:
        """Vision tokens per image: CLS + grid x grid patches."""
        return 1 + self.grid_size**2


@dataclass(frozen=True)
class AbstractorConfig:
    """The visual abstractor settings (read from ``visual_config["visual_abstractor"]``)."""

    num_learnable_queries: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    attention_probs_dropout_prob: float
    initializer_range: float
    layer_norm_eps: float
    encoder_hidden_size: int
    grid_size: int


def _pick(cls, values: dict[str, Any]):
    return cls(**{f.name: values[f.name] for f in fields(cls)})


class MPLUGOwl2Config(LlamaConfig):
    """LLaMA-2 config plus ``visual_config`` (``visual_model`` / ``visual_abstractor`` sub-dicts).

    ``config.vision_config`` and ``config.abstractor_config`` give typed views of the two sub-dicts.
    """

    model_type = "mplug_owl2"

    visual_config: dict | None = None

    def __post_init__(self, **kwargs):
        visual = copy.deepcopy(self.visual_config) if self.visual_config else {}
        merged = default_visual_config()
        for part in ("visual_model", "visual_abstractor"):
            merged[part].update(visual.get(part) or {})
        # the original stores grid_size=None as "use 32"
        if not merged["visual_abstractor"].get("grid_size"):
            merged["visual_abstractor"]["grid_size"] = 32
        self.visual_config = merged
        super().__post_init__(**kwargs)

    @property
    def vision_config(self) -> VisionConfig:
        return _pick(VisionConfig, self.visual_config["visual_model"])

    @property
    def abstractor_config(self) -> AbstractorConfig:
        return _pick(AbstractorConfig, self.visual_config["visual_abstractor"])

    @property
    def image_tokens(self) -> int:
        """LLM positions one image occupies: the abstractor queries plus the ``vit_eos`` row."""
        return self.abstractor_config.num_learnable_queries + 1

    def validate_architecture(self):
        """Checks the constraints the architecture needs (the original fails obscurely on them)."""
        super().validate_architecture()
        v, a = self.vision_config, self.abstractor_config
        if not (v.hidden_size == a.hidden_size == a.encoder_hidden_size):
            raise ValueError(
                "mPLUG-Owl2 needs visual_model.hidden_size == visual_abstractor.hidden_size == "
                f"visual_abstractor.encoder_hidden_size (got {v.hidden_size}, {a.hidden_size}, {a.encoder_hidden_size})"
            )
        if v.image_size % v.patch_size:
            raise ValueError(f"visual_model.image_size {v.image_size} is not a multiple of patch_size {v.patch_size}")
        if a.grid_size != v.grid_size:
            raise ValueError(
                f"visual_abstractor.grid_size ({a.grid_size}) must equal image_size / patch_size ({v.grid_size})"
            )
        for name, c in (("visual_model", v), ("visual_abstractor", a)):
            if c.hidden_size % c.num_attention_heads:
                raise ValueError(f"{name}.hidden_size {c.hidden_size} is not a multiple of num_attention_heads")
