"""Tiny random Hugging Face image-text-to-text checkpoints, built offline (tests, demos, smoke runs).

``build_tiny_llava(folder)`` writes a complete LLaVA folder (config, random weights, CLIP image
processor, a byte-level BPE tokenizer trained here on the prompts of cdbench, chat template) that
``AutoModelForImageTextToText`` / ``AutoProcessor`` and ``cdbench.create_model(folder)`` load with no
network. The tokenizer keeps the five level words single tokens unless told to split some.
``build_tiny_gemma3``, ``build_tiny_idefics3`` and ``build_tiny_qwen2_vl`` do the same for three other
families (other towers, connectors, chat formats, image-token layouts and rotary schemes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cdbench.data import LEVELS
from cdbench.models.mllm.settings import DESCRIBE_INSTRUCTION, SCORE_ANSWER_PREFIX, SCORE_QUESTION

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<image>")

LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %} {% else %}</s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
"""LLaVA-1.5's conversation format: ``USER: <image><image>question ASSISTANT:``."""


def tiny_corpus(split_words: Sequence[str] = ()) -> list[str]:
    """Texts the tiny tokenizer is trained on: the cdbench prompts, level words, severities, roles."""
    words = [w for w in LEVELS if w not in split_words]
    texts = [SCORE_QUESTION, SCORE_ANSWER_PREFIX, DESCRIBE_INSTRUCTION, "USER: ASSISTANT: system user assistant"]
    texts += [f"{SCORE_ANSWER_PREFIX} {w}." for w in words] * 20
    texts += ["slight moderate severe white balance brightness contrast color overall dark bright details"] * 5
    for w in split_words:  # leave no whole occurrence, so BPE cannot learn the word as one token
        texts = [t.replace(w, w[: len(w) // 2]) for t in texts]
    return texts


def build_tiny_tokenizer(folder: str | os.PathLike | None = None, split_words: Sequence[str] = (),
                         vocab_size: int = 1024, special_tokens: Sequence[str] = SPECIAL_TOKENS,
                         extra_special_tokens: dict[str, str] | None = None):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on :func:`tiny_corpus` (deterministic).

    Words listed in ``split_words`` are left out of the training texts, so they encode to several
    tokens (to test the single-token check). Saved to ``folder`` when given.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(tiny_corpus(split_words), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>",
                                   extra_special_tokens=extra_special_tokens or {"image_token": "<image>"})
    if folder is not None:
        fast.save_pretrained(folder)
    return fast


def _save_random_model(model, tokenizer, folder: Path) -> None:
    """Give the 2-D weights a unit-gain scale (larger than the default initialisation, so the logits depend
    visibly on the images) and save the model with the tokenizer's pad token as its generation pad."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and "embed" not in name:
                p.normal_(0.0, 1.0 / p.shape[1] ** 0.5)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval().save_pretrained(folder)


def build_tiny_llava(folder: str | os.PathLike, *, seed: int = 0, image_size: int = 28, split_words: Sequence[str] = (),
                     hidden_size: int = 64, num_layers: int = 2, anyres: bool = False) -> Path:
    """Write a tiny random LLaVA checkpoint folder (float32) and return its path.

    Vision: CLIP ViT, ``image_size`` px, patch 14 (``(image_size/14)^2`` image tokens per image);
    language model: LLaMA with ``hidden_size`` and ``num_layers``; processor with the LLaVA-1.5 chat
    template. Loads with ``AutoModelForImageTextToText`` + ``AutoProcessor``, no network.
    ``anyres=True`` writes a LLaVA-NeXT model instead: the number of image tokens depends on each
    image's aspect ratio, so a batch holds prompts of different lengths (left padding is exercised).
    """
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
        LlavaProcessor,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(split_words=split_words)
    patch = 14
    n_img_tokens = (image_size // patch) ** 2
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=image_size, patch_size=patch, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                       num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    common = {"vision_config": vision, "text_config": text, "image_seq_length": n_img_tokens,
              "image_token_index": tokenizer.convert_tokens_to_ids("<image>"),
              "vision_feature_select_strategy": "default", "vision_feature_layer": -1}
    s = image_size
    pinpoints = [[s, s], [s, 2 * s], [2 * s, s], [2 * s, 2 * s], [s, 3 * s], [3 * s, s]]
    if anyres:
        config = LlavaNextConfig(**common, image_grid_pinpoints=pinpoints)
    else:
        config = LlavaConfig(**common)
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(seed)
    _save_random_model((LlavaNextForConditionalGeneration if anyres else LlavaForConditionalGeneration)(config),
                       tokenizer, folder)
    sizes = {"size": {"shortest_edge": image_size}, "crop_size": {"height": image_size, "width": image_size}}
    if anyres:
        image_processor = LlavaNextImageProcessor(**sizes, image_grid_pinpoints=pinpoints)
    else:
        image_processor = CLIPImageProcessor(**sizes)
    processor_class = LlavaNextProcessor if anyres else LlavaProcessor
    processor = processor_class(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
                                vision_feature_select_strategy="default", chat_template=LLAVA_CHAT_TEMPLATE,
                                num_additional_image_tokens=1)
    processor.save_pretrained(folder)
    return folder


GEMMA3_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<start_of_image>", "<end_of_image>", "<image_soft_token>",
                         "<start_of_turn>", "<end_of_turn>")

GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<start_of_image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
"""Gemma 3's turn format: ``<start_of_turn>user\\n...<end_of_turn>\\n<start_of_turn>model\\n``."""


def build_tiny_gemma3(folder: str | os.PathLike, *, seed: int = 0, image_size: int = 28,
                      hidden_size: int = 64, num_layers: int = 2) -> Path:
    """Write a tiny random Gemma 3 checkpoint folder (float32): SigLIP vision tower, 4 tokens per image
    (bidirectional attention among an image's tokens), Gemma 3 text model, Gemma 3 chat template."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(special_tokens=GEMMA3_SPECIAL_TOKENS, extra_special_tokens={
        "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"})
    ids = tokenizer.convert_tokens_to_ids
    text = {"vocab_size": len(tokenizer), "hidden_size": hidden_size, "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": num_layers, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": hidden_size // 4, "sliding_window": 16, "max_position_embeddings": 512,
            "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": ids("<end_of_turn>")}
    vision = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": image_size, "patch_size": 14}
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=(image_size // 14) ** 2,
                          boi_token_index=ids("<start_of_image>"), eoi_token_index=ids("<end_of_image>"),
                          image_token_index=ids("<image_soft_token>"))
    torch.manual_seed(seed)
    _save_random_model(Gemma3ForConditionalGeneration(config), tokenizer, folder)
    processor = Gemma3Processor(image_processor=Gemma3ImageProcessor(size={"height": image_size, "width": image_size}),
                                tokenizer=tokenizer, chat_template=GEMMA3_CHAT_TEMPLATE,
                                image_seq_length=(image_size // 14) ** 2)
    processor.save_pretrained(folder)
    return folder


IDEFICS3_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<fake_token_around_image>", "<image>",
                           "<end_of_utterance>", "<global-img>",
                           *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)))

IDEFICS3_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
"""Idefics3's turn format: ``<|im_start|>User:<image>...<end_of_utterance>\\nAssistant:``."""


def build_tiny_idefics3(folder: str | os.PathLike, *, seed: int = 0, tile_size: int = 56,
                        hidden_size: int = 64, num_layers: int = 2) -> Path:
    """Write a tiny random Idefics3 checkpoint folder (float32): SigLIP-style tower on ``tile_size`` px tiles,
    pixel-shuffle connector (scale 2, ``(tile_size/14)^2 / 4`` tokens per tile), LLaMA text model.

    The processor splits each image (longest edge resized to ``2 * tile_size``) into up to 2x2 tiles plus a
    global view, so the number of image tokens follows the aspect ratio: a batch mixes prompt lengths.
    Its image processor is the PIL one (no torchvision needed).
    """
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(special_tokens=IDEFICS3_SPECIAL_TOKENS,
                                     extra_special_tokens={"image_token": "<image>"})
    ids = tokenizer.convert_tokens_to_ids
    text = {"model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size, "num_hidden_layers": num_layers, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 1024, "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": ids("<end_of_utterance>")}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "image_size": tile_size, "patch_size": 14}
    config = Idefics3Config(text_config=text, vision_config=vision, image_token_id=ids("<image>"), scale_factor=2,
                            pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    _save_random_model(Idefics3ForConditionalGeneration(config), tokenizer, folder)
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": 2 * tile_size},
                                                max_image_size={"longest_edge": tile_size})
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                  chat_template=IDEFICS3_CHAT_TEMPLATE, image_seq_len=(tile_size // 14) ** 2 // 4)
    processor.save_pretrained(folder)
    return folder


QWEN2_VL_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                           "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")

QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen2-VL's ChatML format with ``<|vision_start|><|image_pad|><|vision_end|>`` per image."""


def build_tiny_qwen2_vl(folder: str | os.PathLike, *, seed: int = 0, hidden_size: int = 64,
                        num_layers: int = 2, max_pixels: int = 56 * 56) -> Path:
    """Write a tiny random Qwen2-VL checkpoint folder (float32): dynamic-resolution ViT (patch 14, 2x2 merge,
    so one image token per 28x28 area, between ``28*28`` and ``max_pixels`` pixels per image), 3-D (M-RoPE)
    rotary text model, Qwen2-VL's ChatML template.

    The folder holds the model, the tokenizer, the chat template and the image processor
    (``preprocessor_config.json``). Qwen2-VL's processor also has a video half that needs torchvision; where
    torchvision is missing (CPU-only torch), build the processor with
    :func:`~cdbench.models.mllm.hf_vlm.qwen2_vl_image_processor`.
    """
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(special_tokens=QWEN2_VL_SPECIAL_TOKENS, extra_special_tokens={
        "image_token": "<|image_pad|>", "video_token": "<|video_pad|>"})
    ids = tokenizer.convert_tokens_to_ids
    half_rotary = hidden_size // 4 // 2  # 4 heads; M-RoPE splits the rotary half-dimension into t / h / w
    hw_section = 3 * half_rotary // 8
    text = {"vocab_size": len(tokenizer), "hidden_size": hidden_size, "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": num_layers, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 1024, "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": ids("<|im_end|>"),
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,  # Qwen2-VL-7B's split is 16/24/24
                                "mrope_section": [half_rotary - 2 * hw_section, hw_section, hw_section]}}
    vision = {"depth": 2, "embed_dim": 32, "hidden_size": hidden_size, "num_heads": 4, "mlp_ratio": 2,
              "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids("<|image_pad|>"),
                           video_token_id=ids("<|video_pad|>"), vision_start_token_id=ids("<|vision_start|>"),
                           vision_end_token_id=ids("<|vision_end|>"))
    torch.manual_seed(seed)
    _save_random_model(Qwen2VLForConditionalGeneration(config), tokenizer, folder)
    tokenizer.save_pretrained(folder)
    Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=max_pixels, patch_size=14, merge_size=2,
                             temporal_patch_size=2).save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(QWEN2_VL_CHAT_TEMPLATE, encoding="utf-8")
    return folder

