"""The mplug_owl2 conversation template and ``tokenizer_image_token`` (image placeholders -> -200).

Reproduces ``conversation.py`` / ``mm_utils.py`` of the Q-Align / CD-Reasoning releases: the
``mplug_owl2`` template (separator style ``TWO_NO_SYS``: no system text, ``"USER: ... ASSISTANT:"``,
turns ended by ``" "`` and ``"</s>"``), and the tokenisation that splits a prompt on ``<|image|>``,
tokenises each chunk and joins them with ``IMAGE_TOKEN_INDEX`` (-200), keeping one BOS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cdbench.models.mplug_owl2.modeling import IMAGE_TOKEN_INDEX

DEFAULT_IMAGE_TOKEN = "<|image|>"

MPLUG_OWL2_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


@dataclass
class Conversation:
    """A conversation rendered in the original ``TWO_NO_SYS`` style (the ``mplug_owl2`` template).

    ``messages`` is a list of ``[role, text]``; a ``None`` text leaves the turn open (``"ASSISTANT:"``),
    which is how a prompt for generation or level scoring ends.
    """

    system: str = MPLUG_OWL2_SYSTEM
    roles: tuple[str, str] = ("USER", "ASSISTANT")
    messages: list[list] = field(default_factory=list)
    sep: str = " "
    sep2: str = "</s>"
    version: str = "v1"

    def append_message(self, role: str, message: str | None) -> None:
        self.messages.append([role, message])

    def get_prompt(self) -> str:
        """The prompt text: ``"USER: <msg> ASSISTANT: <answer></s>USER: ..."`` (the system text is not used)."""
        seps = (self.sep, self.sep2)
        out = ""
        for i, (role, message) in enumerate(self.messages):
            if message:
                if isinstance(message, tuple):
                    message = message[0]
                out += f"{role}: {message}{seps[i % 2]}"
            else:
                out += f"{role}:"
        return out

    def copy(self) -> Conversation:
        return Conversation(self.system, self.roles, [list(m) for m in self.messages], self.sep, self.sep2,
                            self.version)


conv_mplug_owl2 = Conversation()
conv_templates: dict[str, Conversation] = {"mplug_owl2": conv_mplug_owl2, "default": conv_mplug_owl2}


def build_prompt(user_message: str, answer_prefix: str = "", template: str = "mplug_owl2") -> str:
    """One user turn and the open assistant turn, optionally followed by the start of the answer.

    ``build_prompt("<|image|><|image|>How different?", "The color difference ... is")`` ->
    ``"USER: <|image|><|image|>How different? ASSISTANT: The color difference ... is"``.
    """
    conv = conv_templates[template].copy()
    conv.append_message(conv.roles[0], user_message)
    conv.append_message(conv.roles[1], None)
    prompt = conv.get_prompt()
    return f"{prompt} {answer_prefix}" if answer_prefix else prompt


def tokenizer_image_token(prompt: str, tokenizer, image_token_index: int = IMAGE_TOKEN_INDEX,
                          return_tensors: str | None = None, image_token: str = DEFAULT_IMAGE_TOKEN):
    """Token ids of ``prompt`` with one ``image_token_index`` per ``<|image|>`` (the original's function).

    Each text chunk is tokenised on its own; when the first chunk starts with BOS, one BOS is kept and
    the first token of every chunk is dropped (the BOS the tokenizer adds to each chunk), exactly as
    the original does. A transformers-5 LLaMA tokenizer is first made
    :func:`~cdbench.models.mplug_owl2.tokenization.sentencepiece_compatible` (in place), so chunks that
    start with a space get the original's ids.
    """
    from cdbench.models.mplug_owl2.tokenization import sentencepiece_compatible

    sentencepiece_compatible(tokenizer)
    chunks = [tokenizer(c).input_ids if len(c) > 0 else [] for c in prompt.split(image_token)]
    ids: list[int] = []
    offset = 0
    if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        ids.append(chunks[0][0])
    for i, chunk in enumerate(chunks):
        if i:
            ids.append(image_token_index)  # the separator [-200] * (offset + 1), cut by [offset:]
        ids.extend(chunk[offset:])
    if return_tensors is None:
        return ids
    if return_tensors == "pt":
        import torch

        return torch.tensor(ids, dtype=torch.long)
    raise ValueError(f"unsupported return_tensors {return_tensors!r} (use 'pt' or None)")


def tokenize_batch(prompts: Sequence[str], tokenizer, padding_side: str = "left"):
    """Several prompts -> padded ``input_ids`` (with -200) and ``attention_mask`` tensors (pad id 0 or the
    tokenizer's pad id); left padding by default, as batched generation needs."""
    import torch

    rows = [tokenizer_image_token(p, tokenizer) for p in prompts]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(width - len(r), width) if padding_side == "left" else slice(0, len(r))
        ids[i, sl] = torch.tensor(r, dtype=torch.long)
        mask[i, sl] = 1
    return ids, mask
