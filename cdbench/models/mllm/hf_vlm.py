"""Any Hugging Face image-text-to-text model as a colour-difference scorer and describer.

``AutoModelForImageTextToText`` + ``AutoProcessor`` from a local folder (no network, no remote code),
the processor's own chat template with the two images of a pair in one user turn, left padding.
``score`` appends the answer prefix after the generation prompt and reads the level-word logits at
the last position (Q-Align, :mod:`cdbench.models.mllm.level_scoring`); ``describe`` generates from
the CD-Reasoning instruction. Tested with tiny random LLaVA-1.5, LLaVA-NeXT, Gemma 3, Idefics3 and
Qwen2-VL checkpoints (:mod:`cdbench.models.mllm.tiny`); other processors with a chat template work the
same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cdbench.errors import ModelError
from cdbench.models.mllm.batching import auto_batch_size
from cdbench.models.mllm.level_scoring import level_token_ids
from cdbench.models.mllm.llm_model import LLMCDModel
from cdbench.models.mllm.settings import MLLMSettings, join_prompt


class HFVisionLanguageCDModel(LLMCDModel):
    """A local Hugging Face image-text-to-text checkpoint folder as a :class:`~cdbench.models.CDModel`.

    Options: the prompt/decoding fields of :class:`MLLMSettings`, plus ``device``, ``dtype``
    (default bfloat16 on CUDA, float32 on CPU), ``batch_size`` (``"auto"``), ``workers``,
    ``attn_implementation`` (``"sdpa"``), ``name``, and ``processor``: a processor object to use instead
    of the folder's ``AutoProcessor`` (other image sizes; Qwen2-VL without torchvision, see
    :func:`qwen2_vl_image_processor`).
    """

    def __init__(self, folder: str | os.PathLike, **options: Any):
        processor = options.pop("processor", None)
        settings, rest = MLLMSettings.split_options(dict(options))
        super().__init__(folder, settings, **rest)
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            self.processor = processor or AutoProcessor.from_pretrained(self.folder, local_files_only=True)
            self.model = AutoModelForImageTextToText.from_pretrained(
                self.folder, dtype=self.dtype, attn_implementation=self.attn_implementation, local_files_only=True)
        except (OSError, ValueError, KeyError, ImportError) as e:
            raise ModelError(f"{self.folder}: cannot load as an image-text-to-text model ({_one_line(e)})"
                             f"{_video_processor_hint(e)}") from None
        self.model.to(self.device).eval()
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None or getattr(self.processor, "chat_template", None) is None:
            raise ModelError(f"{self.folder}: the processor needs a tokenizer and a chat template")
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        s = self.prompt_settings
        self.score_prompt = join_prompt(self._chat_prompt(s.score_question), s.score_answer_prefix)
        self.describe_prompt = self._chat_prompt(s.describe_instruction)
        self._level_ids = level_token_ids(self.tokenizer, s.level_words, s.score_answer_prefix, s.level_token)

    @property
    def level_token_ids(self) -> list[int]:
        return self._level_ids

    def _chat_prompt(self, text: str) -> str:
        images = [{"type": "image"}, {"type": "image"}]
        question = [{"type": "text", "text": text}]
        content = question + images if self.prompt_settings.image_position == "after" else images + question
        return self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                  add_generation_prompt=True, tokenize=False)

    def _prepare(self, images: list[tuple[np.ndarray, np.ndarray]], task: str):
        prompt = self.score_prompt if task == "score" else self.describe_prompt
        return self.processor(text=[prompt] * len(images), images=[[a, b] for a, b in images],
                              padding=True, return_tensors="pt")

    def _to_device(self, inputs) -> dict:
        out = {}
        for k, v in inputs.items():
            if hasattr(v, "to"):
                v = v.to(self.device, non_blocking=True)
                if v.is_floating_point():
                    v = v.to(self.dtype)
            out[k] = v
        return out

    def _last_logits(self, inputs):
        # generate() derives the position ids of left-padded rows from the attention mask for every
        # architecture (1-D rotary, Qwen2-VL's 3-D rotary, ...); one step, raw logits
        out = self.model.generate(**self._to_device(inputs), max_new_tokens=1, do_sample=False, num_beams=1,
                                  output_logits=True, return_dict_in_generate=True,
                                  pad_token_id=self.tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)
        return out.logits[0]

    def _generate(self, inputs, pair_keys: list[int] | None = None) -> list[str]:
        inputs = self._to_device(inputs)
        width = inputs["input_ids"].shape[1]
        seqs = self.model.generate(**inputs, **self._generation_kwargs(pair_keys, width),
                                   pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.batch_decode(seqs[:, width:], skip_special_tokens=True)

    def _auto_batch_size(self) -> int:
        cfg = self.model.config.get_text_config()
        heads = getattr(cfg, "num_attention_heads", 32)
        kv = getattr(cfg, "num_key_value_heads", None) or heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        tokens = 2048  # two images plus the prompt, generously, for an unknown processor
        return auto_batch_size(self.device, tokens, cfg.hidden_size, cfg.num_hidden_layers, kv * head_dim,
                               dtype_bytes=self.dtype.itemsize)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "family": "hf-image-text-to-text",
                "model_type": self.model.config.model_type, "score_prompt": self.score_prompt,
                "describe_prompt": self.describe_prompt}


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _video_processor_hint(error: Exception) -> str:
    """Processors with a video half (Qwen2-VL, ...) need torchvision, which CPU-only torch installs may lack."""
    from transformers.utils import is_torchvision_available

    if "video" in str(error).lower() and not is_torchvision_available():
        return ("; its processor has a video half that needs torchvision: install torchvision, or pass an "
                "image-only processor as processor=...")
    return ""


def qwen2_vl_image_processor(folder: str | os.PathLike):
    """Qwen2-VL's processor with its image half only, from a checkpoint folder (tokenizer, image processor,
    ``chat_template.jinja``): what ``AutoProcessor`` would give, for images, where its video half cannot
    be built because torchvision is missing. Pass it as ``create_model(folder, processor=...)``."""
    from transformers import AutoTokenizer, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
        def __init__(self, image_processor, tokenizer, chat_template=None):
            # Qwen2VLProcessor.__init__ also type-checks a video processor; set what it sets, then the mixin
            self.image_token, self.video_token = tokenizer.image_token, tokenizer.video_token
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return ImageOnlyQwen2VLProcessor(Qwen2VLImageProcessorPil.from_pretrained(folder, local_files_only=True),
                                     tokenizer, chat_template=_folder_chat_template(folder, tokenizer))


def _folder_chat_template(folder: Path, tokenizer) -> str | None:
    """The chat template a checkpoint folder ships: ``chat_template.jinja``, ``chat_template.json``, or the
    tokenizer's."""
    import json

    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text(encoding="utf-8")
    if (folder / "chat_template.json").is_file():
        return json.loads((folder / "chat_template.json").read_text(encoding="utf-8")).get("chat_template")
    return getattr(tokenizer, "chat_template", None)
