"""Q-Align level scoring and CD-Reasoning descriptions with mPLUG-Owl2 checkpoint folders.

The model is cdbench's native mPLUG-Owl2 (:mod:`cdbench.models.mplug_owl2`, loaded through
``AutoModelForCausalLM``; LoRA release folders are merged into their base with peft). Prompts use the
``mplug_owl2`` conversation template with both images of a pair:

- score: ``USER: <question>\\n<|image|><|image|> ASSISTANT: The color difference between these two
  images is`` and the softmax over the level-word logits at the last position (Q-Align);
- describe: ``USER: <M-SPCD instruction>\\n<|image|><|image|> ASSISTANT:`` and greedy decoding.

Images are preprocessed by :class:`~cdbench.models.mplug_owl2.image_processing.MPLUGOwl2ImageProcessor`
as the released ``preprocessor_config.json`` says (CLIP: shortest edge to the model's size, bicubic,
centre crop, CLIP mean/std; ``image_aspect_ratio="pad"`` pads to a square with the mean colour first,
as Q-Align's releases do), in worker threads while the model runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cdbench.errors import ModelError
from cdbench.models.mllm.batching import auto_batch_size, left_pad
from cdbench.models.mllm.level_scoring import level_token_ids
from cdbench.models.mllm.llm_model import LLMCDModel
from cdbench.models.mllm.loaders import is_lora_release_folder, read_folder_config
from cdbench.models.mllm.settings import MLLMSettings, question_with_images

IMAGE_PLACEHOLDER = "<|image|>"


class MPLUGOwl2CDModel(LLMCDModel):
    """An mPLUG-Owl2 / Q-Align / CD-Reasoning folder as a :class:`~cdbench.models.CDModel`.

    Options: the prompt/decoding fields of :class:`MLLMSettings`; ``conversation`` (template name,
    ``"mplug_owl2"``); ``image_aspect_ratio`` (``"config"``: the folder's ``config.json`` value, which
    Q-Align releases set to ``"pad"`` and CD-Reasoning leaves out; or ``"pad"``, ``"resize"``,
    ``None``: shortest edge + centre crop); ``base`` (the base model folder of a LoRA release, when its
    ``adapter_config.json`` does not name a local one); ``device``, ``dtype`` (bfloat16 on CUDA,
    float32 on CPU), ``batch_size`` (``"auto"``), ``workers``, ``attn_implementation`` (``"sdpa"``),
    ``name``.
    """

    def __init__(self, folder: str | os.PathLike, *, conversation: str = "mplug_owl2",
                 image_aspect_ratio: str | None = "config", base: str | os.PathLike | None = None,
                 **options: Any):
        settings, rest = MLLMSettings.split_options(dict(options))
        super().__init__(folder, settings, **rest)
        if image_aspect_ratio not in ("config", "pad", "resize", "none", None):
            raise ModelError("image_aspect_ratio must be 'config', 'pad', 'resize' or None, "
                             f"got {image_aspect_ratio!r}")
        import cdbench.models.mplug_owl2  # noqa: F401  (registers model_type mplug_owl2 with the Auto classes)

        self.lora = is_lora_release_folder(self.folder)
        self.base = Path(base) if base is not None else None
        model = self._load_model()
        self._setup(model, self._load_tokenizer(),
                    self._load_image_processor(None if image_aspect_ratio == "none" else image_aspect_ratio),
                    conversation)

    @classmethod
    def from_components(cls, model, tokenizer, image_processor, *, name: str = "mplug-owl2",
                        conversation: str = "mplug_owl2", **options: Any) -> MPLUGOwl2CDModel:
        """Wrap an already built ``MPLUGOwl2LlamaForCausalLM`` (e.g. random weights made on the GPU for a
        benchmark, or a model being fine-tuned), its tokenizer and image processor; the model is used as
        it is (device and dtype from its parameters unless given)."""
        settings, rest = MLLMSettings.split_options(dict(options))
        param = next(model.parameters())
        rest.setdefault("device", str(param.device))
        rest.setdefault("dtype", param.dtype)
        rest.setdefault("attn_implementation", getattr(model.config, "_attn_implementation", None) or "sdpa")
        self = cls.__new__(cls)
        LLMCDModel.__init__(self, name, settings, name=name, **rest)
        self.lora, self.base = False, None
        self._setup(model, tokenizer, image_processor, conversation)
        return self

    def _setup(self, model, tokenizer, image_processor, conversation: str) -> None:
        from cdbench.models.mplug_owl2.conversation import build_prompt, conv_templates, tokenizer_image_token

        if conversation not in conv_templates:
            raise ModelError(f"unknown conversation template {conversation!r}; known: {', '.join(conv_templates)}")
        self.conversation = conversation
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        s = self.prompt_settings
        self.score_prompt = build_prompt(question_with_images(s.score_question, IMAGE_PLACEHOLDER, s.image_position),
                                         s.score_answer_prefix, template=conversation)
        self.describe_prompt = build_prompt(
            question_with_images(s.describe_instruction, IMAGE_PLACEHOLDER, s.image_position), template=conversation)
        self._prompt_ids = {"score": tokenizer_image_token(self.score_prompt, self.tokenizer),
                            "describe": tokenizer_image_token(self.describe_prompt, self.tokenizer)}
        self._level_ids = level_token_ids(self.tokenizer, s.level_words, s.score_answer_prefix, s.level_token)
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else 0)

    # --- loading ----------------------------------------------------------------------------------
    def _load_model(self):
        from transformers import AutoModelForCausalLM

        kw = {"dtype": self.dtype, "attn_implementation": self.attn_implementation, "local_files_only": True}
        try:
            if self.lora:
                from cdbench.models.mplug_owl2.lora import load_lora_model

                kw.pop("local_files_only")
                return load_lora_model(self.folder, self.base, **kw)
            return AutoModelForCausalLM.from_pretrained(self.folder, **kw)
        except (OSError, ValueError, KeyError) as e:
            if isinstance(e, ModelError):
                raise
            raise ModelError(f"{self.folder}: cannot load the mPLUG-Owl2 checkpoint ({e})") from None

    def _tokenizer_folder(self) -> Path:
        for cand in (self.folder, self.base):
            if cand is not None and any((Path(cand) / f).is_file() for f in
                                        ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
                return Path(cand)
        raise ModelError(f"{self.folder}: no tokenizer (tokenizer.json / tokenizer.model) in the folder"
                         + (" or its base" if self.lora else ""))

    def _load_tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self._tokenizer_folder(), local_files_only=True)

    def _load_image_processor(self, image_aspect_ratio: str | None):
        from cdbench.models.mplug_owl2.image_processing import MPLUGOwl2ImageProcessor

        candidates = [c for c in (self.folder, self.base) if c is not None]
        for cand in candidates:
            if (Path(cand) / "preprocessor_config.json").is_file():
                if image_aspect_ratio == "config" and cand != self.folder:  # the LoRA folder's config decides
                    proc = MPLUGOwl2ImageProcessor.from_pretrained(cand, image_aspect_ratio=None, workers=2)
                    proc.image_aspect_ratio = (read_folder_config(self.folder) or {}).get("image_aspect_ratio")
                    return proc
                return MPLUGOwl2ImageProcessor.from_pretrained(cand, image_aspect_ratio=image_aspect_ratio, workers=2)
        where = " (nor in the base folder)" if self.lora else ""
        raise ModelError(f"{self.folder}: no preprocessor_config.json{where}")

    # --- the LLMCDModel hooks -----------------------------------------------------------------------
    @property
    def level_token_ids(self) -> list[int]:
        return self._level_ids

    def _prepare(self, images: list[tuple[np.ndarray, np.ndarray]], task: str):
        pixel_values = self.image_processor([im for pair in images for im in pair], return_tensors="pt")
        input_ids, attention_mask = left_pad([self._prompt_ids[task]] * len(images), self.pad_token_id)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "images": pixel_values}

    def _to_device(self, inputs: dict) -> dict:
        return {"input_ids": inputs["input_ids"].to(self.device, non_blocking=True),
                "attention_mask": inputs["attention_mask"].to(self.device, non_blocking=True),
                "images": inputs["images"].to(self.device, non_blocking=True).to(self.dtype)}  # cast on the device

    def _last_logits(self, inputs):
        out = self.model(**self._to_device(inputs), logits_to_keep=1, use_cache=False)
        return out.logits[:, -1, :]

    def _generate(self, inputs, pair_keys: list[int] | None = None) -> list[str]:
        inputs = self._to_device(inputs)
        width = inputs["input_ids"].shape[1]
        seqs = self.model.generate(inputs["input_ids"], images=inputs["images"],
                                   attention_mask=inputs["attention_mask"],
                                   **self._generation_kwargs(pair_keys, width), pad_token_id=self.pad_token_id,
                                   eos_token_id=self.tokenizer.eos_token_id)
        return self.tokenizer.batch_decode(seqs[:, width:], skip_special_tokens=True)

    def _auto_batch_size(self) -> int:
        cfg = self.model.config
        q = cfg.visual_config["visual_abstractor"]["num_learnable_queries"] + 1
        tokens = len(self._prompt_ids["describe"]) + 2 * q + self.prompt_settings.max_new_tokens
        kv = (cfg.num_key_value_heads or cfg.num_attention_heads) * (cfg.hidden_size // cfg.num_attention_heads)
        return auto_batch_size(self.device, tokens, cfg.hidden_size, cfg.num_hidden_layers, kv,
                               dtype_bytes=self.dtype.itemsize)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "family": "mplug_owl2", "conversation": self.conversation,
                "image_processor": self.image_processor.settings(), "lora": self.lora,
                "score_prompt": self.score_prompt, "describe_prompt": self.describe_prompt}
