"""Q-Align level scoring: the level value from the level-word logits at the last position.

Reference: Wu et al., "Q-Align: Teaching LMMs for Visual Scoring via Discrete Text-Defined Levels",
ICML 2024, Eq. 4: ``p_i = softmax(logits[l_i])`` over the level-word tokens ``l_i`` at the position
after the answer prefix, ``score = sum_i p_i * w_i``; M-SPCD (TIP 2025) scales it by 5:
``level_value = 5 * sum_i p_i * w_i`` with ``w = (0, .25, .5, .75, 1)``
(:func:`cdbench.data.level_value_from_probs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cdbench.data import level_value_from_probs
from cdbench.errors import ModelError


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def level_token_ids(tokenizer: Any, words: Sequence[str], context: str, policy: str = "single") -> list[int]:
    """Token id of each level word as it follows ``context`` (the answer prefix) after one space.

    The id is read from the tokenization of ``context + " " + word`` beyond that of ``context``, so
    it is the token the model would emit there (``▁slight`` for sentencepiece, ``Ġslight`` for
    byte-level BPE). With ``policy="single"`` a word that is not exactly one token raises
    :class:`ModelError` naming the word and its pieces; with ``"first"`` its first token is used
    (Q-Align's ``tokenizer(word).input_ids[1]``). Ids must be distinct.
    """
    base = _encode(tokenizer, context)
    ids: list[int] = []
    for word in words:
        full = _encode(tokenizer, f"{context} {word}")
        if full[:len(base)] != base:
            raise ModelError(f"level word {word!r} merges with the end of the answer prefix {context!r} for this "
                             "tokenizer, so no token of it can be scored at the last prompt position")
        pieces = full[len(base):]
        if len(pieces) != 1 and policy == "single":
            shown = [tokenizer.convert_ids_to_tokens(i) for i in pieces]
            raise ModelError(f"level word {word!r} is {len(pieces)} tokens {shown} for this tokenizer, not one: "
                             "level scoring needs single-token level words (use other level_words, or "
                             "level_token='first' to score by the first token as Q-Align does)")
        if not pieces:
            raise ModelError(f"level word {word!r} encodes to no token for this tokenizer")
        ids.append(int(pieces[0]))
    if len(set(ids)) != len(ids):
        raise ModelError(f"level words {list(words)} share tokens {ids} for this tokenizer")
    return ids


def level_probabilities(last_logits: Any, level_ids: Sequence[int]) -> np.ndarray:
    """Softmax over the level-word logits, (B, V) -> (B, 5) float64 (computed in float64)."""
    import torch

    sel = last_logits[..., list(level_ids)].detach().to(device="cpu", dtype=torch.float64)
    return torch.softmax(sel, dim=-1).numpy()


def level_values(probs: np.ndarray) -> np.ndarray:
    """``5 * sum_i p_i * w_i`` per row (:func:`cdbench.data.level_value_from_probs`)."""
    return np.asarray(level_value_from_probs(probs), dtype=np.float64)
