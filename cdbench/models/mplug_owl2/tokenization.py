"""The LLaMA tokenizer of a checkpoint folder, tokenising exactly as the original (sentencepiece) one.

The released code tokenises with the slow sentencepiece ``LlamaTokenizer`` of transformers 4.36
(``use_fast=False``): ``[BOS] + sp.encode(text)``, where sentencepiece prepends ``▁`` to every text and
maps spaces to ``▁``, so ``" ASSISTANT:"`` is tokenised from ``"▁▁ASSISTANT:"``. transformers 5's
``LlamaTokenizer`` uses a ``Metaspace`` pre-tokeniser that prepends ``▁`` only when the text does not
already start with a space, so a chunk starting with a space (CD-Reasoning's ``"<|image|><|image|>
ASSISTANT:"``: the chunk after the images is ``" ASSISTANT: ..."``) loses one ``▁`` token and the
prompt ids differ from the original's. :func:`sentencepiece_compatible` switches such a tokenizer to
the sentencepiece rule (normaliser ``Prepend("▁")`` + ``Replace(" ", "▁")``, no pre-tokeniser: the
layout of the transformers 4.3x LLaMA fast tokenizer, equal to sentencepiece's output).
"""

from __future__ import annotations

import os
from pathlib import Path

from cdbench.errors import ModelError

_FLAG = "_cdbench_sentencepiece_compatible"


def _is_metaspace_llama(backend) -> bool:
    pre = backend.pre_tokenizer
    model = backend.model
    return (pre is not None and type(pre).__name__ == "Metaspace" and backend.normalizer is None
            and type(model).__name__ == "BPE" and getattr(model, "byte_fallback", False))


def sentencepiece_compatible(tokenizer):
    """Make a transformers-5 LLaMA tokenizer tokenise as sentencepiece does (in place; returns it).

    Tokenizers that are not LLaMA-style (no ``Metaspace`` pre-tokeniser over a byte-fallback BPE) and
    slow sentencepiece tokenizers are returned unchanged. Idempotent.
    """
    if getattr(tokenizer, _FLAG, False):
        return tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and _is_metaspace_llama(backend):
        from tokenizers import normalizers

        prepend = getattr(backend.pre_tokenizer, "prepend_scheme", "first") != "never"
        steps = [normalizers.Prepend("▁")] if prepend else []
        backend.normalizer = normalizers.Sequence([*steps, normalizers.Replace(" ", "▁")])
        backend.pre_tokenizer = None
    try:
        setattr(tokenizer, _FLAG, True)
    except AttributeError:
        pass
    return tokenizer


def load_tokenizer(folder: str | os.PathLike, **kwargs):
    """``AutoTokenizer.from_pretrained(folder)`` (offline), made :func:`sentencepiece_compatible`.

    A folder with only ``tokenizer.model`` (sentencepiece) needs the ``sentencepiece`` and ``protobuf``
    packages (``pip install 'cdbench[mllm]'``) for the conversion.
    """
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        raise ModelError(f"{folder}: no tokenizer files (tokenizer.json / tokenizer.model)")
    kwargs.setdefault("local_files_only", True)
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError, ImportError) as e:
        raise ModelError(f"{folder}: cannot load the tokenizer ({type(e).__name__}: {e})") from None
    return sentencepiece_compatible(tok)
