"""``build_tiny_mplug_owl2``: a complete tiny random mPLUG-Owl2 checkpoint folder, offline, in about a second.

The folder has what a released Q-Align / CD-Reasoning folder has: ``config.json`` (the released
format), ``model.safetensors`` (the released key names), ``generation_config.json``,
``preprocessor_config.json`` (CLIP settings sized for the tiny ViT) and a LLaMA-style BPE tokenizer
(``tokenizer.json`` / ``tokenizer_config.json``, byte fallback, ``<unk>``/``<s>``/``</s>`` = 0/1/2)
trained offline with the ``tokenizers`` library on the prompts of this field, in which the five level
words (and any ``single_token_words``) are single tokens. Tests of the scorers, describers and
fine-tuning build one in a temporary folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from cdbench.data.attributes import ATTRIBUTE_NAMES, ATTRIBUTES, SEVERITIES
from cdbench.data.levels import LEVELS

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")
_BYTE_TOKENS = tuple(f"<0x{i:02X}>" for i in range(256))

_CORPUS = (
    "USER: <|image|><|image|>Compare the colors of these two images. ASSISTANT: "
    "The color difference between these two images is {level}.",
    "Rate the color difference between the two images. The color difference between these two images is {level}.",
    "Describe the color differences between the two images, such as hue, saturation, brightness, contrast "
    "and white balance.",
    "The second image shows a {severity} shift in {attribute} compared with the first image.",
    "The images differ in {attribute}: a {severity} change of {attribute} is visible.",
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions.",
    "How would you rate the quality of this image? The quality of the image is good.",
)


def _corpus(words: Sequence[str]) -> list[str]:
    attrs = [ATTRIBUTE_NAMES.get(a, a) for a in ATTRIBUTES]
    lines = []
    for level in LEVELS:
        for sev in SEVERITIES:
            for attr in attrs:
                lines.extend(t.format(level=level, severity=sev, attribute=attr) for t in _CORPUS)
    # the words that must be single tokens, often enough that BPE merges them whole
    lines.extend(" ".join([w] * 2000) for w in words)
    return lines


def build_tiny_tokenizer(folder: str | os.PathLike, vocab_size: int = 512,
                         single_token_words: Sequence[str] = (), model_max_length: int = 2048) -> None:
    """Write a tiny LLaMA-style tokenizer (``tokenizer.json``, ``tokenizer_config.json``) into ``folder``.

    Byte-fallback BPE on a Metaspace (``▁``) pre-tokenisation as LLaMA's; ids 0/1/2 are
    ``<unk>``/``<s>``/``</s>``, then the 256 byte tokens, then the learned pieces; BOS is added, the
    pad token is ``<unk>`` (id 0, as the Q-Align code sets it). The level words and
    ``single_token_words`` encode as one token each (checked). Raises ``ValueError`` when
    ``vocab_size`` is too small for that.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizer

    words = list(dict.fromkeys([*LEVELS, *single_token_words]))
    learned = vocab_size - len(SPECIAL_TOKENS) - len(_BYTE_TOKENS)
    if learned < 64:
        raise ValueError(f"vocab_size {vocab_size} too small: needs room for 3 special and 256 byte tokens and more")
    bpe = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(vocab_size=learned, special_tokens=[], show_progress=False, min_frequency=1)
    bpe.train_from_iterator(_corpus(words), trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    learned_vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    vocab = {tok: i for i, tok in enumerate((*SPECIAL_TOKENS, *_BYTE_TOKENS))}
    for tok, _ in learned_vocab:
        vocab.setdefault(tok, len(vocab))
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = LlamaTokenizer(vocab=vocab, merges=merges, add_prefix_space=True, add_bos_token=True,
                         pad_token="<unk>", model_max_length=model_max_length)
    for w in words:
        ids = tok(w, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise ValueError(f"tiny tokenizer: {w!r} is not a single token ({ids}); raise vocab_size ({vocab_size})")
    tok.save_pretrained(str(folder))


def build_tiny_mplug_owl2(
    folder: str | os.PathLike,
    seed: int = 0,
    vocab_size: int = 512,
    *,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int | None = None,
    intermediate_size: int = 128,
    image_size: int = 56,
    patch_size: int = 14,
    vision_hidden_size: int = 32,
    vision_layers: int = 2,
    num_queries: int = 8,
    abstractor_layers: int = 2,
    max_position_embeddings: int = 2048,
    single_token_words: Sequence[str] = (),
    weight_scale: float = 1.0,
    dtype: str = "float32",
    vocab: int | None = None,
) -> Path:
    """Write a tiny random mPLUG-Owl2 checkpoint folder and return its path.

    Weights are drawn from a ``torch.Generator`` seeded with ``seed`` (the global RNG is not touched):
    linear / conv weights N(0, 1/fan_in) and embeddings, queries, CLS and position tables N(0, 0.02^2),
    times ``weight_scale``; norms 1 + N(0, 0.1^2). Same arguments, same files. ``vocab`` is an alias of
    ``vocab_size``. The tokenizer is :func:`build_tiny_tokenizer` (level words single tokens).
    """
    import torch
    from safetensors.torch import save_file

    from cdbench.models.mplug_owl2.configuration import MPLUGOwl2Config
    from cdbench.models.mplug_owl2.modeling import MPLUGOwl2LlamaForCausalLM

    vocab_size = vocab if vocab is not None else vocab_size
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = MPLUGOwl2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads or num_attention_heads,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=0,
        visual_config={
            "visual_model": {
                "hidden_size": vision_hidden_size, "intermediate_size": 2 * vision_hidden_size,
                "num_hidden_layers": vision_layers, "num_attention_heads": 4,
                "image_size": image_size, "patch_size": patch_size,
            },
            "visual_abstractor": {
                "num_learnable_queries": num_queries, "hidden_size": vision_hidden_size,
                "encoder_hidden_size": vision_hidden_size, "intermediate_size": 3 * vision_hidden_size // 2,
                "num_hidden_layers": abstractor_layers, "num_attention_heads": 4,
                "grid_size": image_size // patch_size,
            },
        },
    )
    config.architectures = ["MPLUGOwl2LlamaForCausalLM"]
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the default init draws from the global RNG: leave it untouched
        model = MPLUGOwl2LlamaForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and ("norm" in name or "layernorm" in name or "ffn_ln" in name) and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.ndim >= 2 and "embed" not in name and "token" not in name and "vit_eos" not in name \
                    and "position_embedding" not in name:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * weight_scale / fan_in**0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02 * weight_scale)
    model.to(getattr(torch, dtype))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config.dtype = dtype
    config.save_pretrained(str(folder))
    model.generation_config.save_pretrained(str(folder))
    preprocessor = {
        "crop_size": image_size, "do_center_crop": True, "do_normalize": True, "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3, "size": image_size,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    build_tiny_tokenizer(folder, vocab_size=vocab_size, single_token_words=single_token_words,
                         model_max_length=max_position_embeddings)
    return folder
