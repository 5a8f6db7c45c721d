"""Settings of the multimodal-LLM scorers and describers: level words, prompts, decoding.

Every setting that changes a model's outputs lives in :class:`MLLMSettings`, has a default that
reproduces the published models, and is recorded in every results file through
``CDModel.settings()``.

References:
- Q-Align (Wu et al., ICML 2024): score = softmax over the level-word logits at the position after
  the answer prefix, weighted by the level weights.
- CD-Reasoning / M-SPCD (Wang et al., "Harnessing Multi-modal Large Language Models for Measuring
  and Interpreting Color Differences", IEEE TIP 2025): the level words
  negligible/slight/moderate/significant/severe, the answer "The color difference between these two
  images is <level>." and the description instruction of the M-SPCD ``depict_task`` files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from cdbench.data import LEVEL_WEIGHTS, LEVELS
from cdbench.errors import ModelError

SCORE_ANSWER_PREFIX = "The color difference between these two images is"
"""The answer prefix of the scoring prompt; the next token is the level word (M-SPCD answers)."""

SCORE_QUESTION = "How would you describe the color difference in these two images?"
"""One of the 20 paraphrased M-SPCD ``score_task`` questions."""

DESCRIBE_INSTRUCTION = (
    "Please provide a descriptive analysis for the color difference between the two images in terms of "
    "the following dimensions: white balance, brightness/contrast, color contrast, overall brightness, "
    "overall color, dark details, and bright details. Assign a degree of severity (slight, moderate, "
    "severe) for each dimension."
)
"""The M-SPCD ``depict_task`` instruction (identical in all 100 test items)."""

IMAGE_POSITIONS = ("after", "before")
LEVEL_TOKEN_POLICIES = ("single", "first")


@dataclass(frozen=True)
class MLLMSettings:
    """Prompts, level words and decoding options of an LLM colour-difference model.

    ``image_position``: where the two image placeholders go relative to the question text:
    ``"after"`` (``question\\n<img><img>``, as CD-Reasoning's evaluation prompt) or ``"before"``
    (``<img><img>\\nquestion``, as the M-SPCD training conversations).
    ``level_token``: ``"single"`` requires each level word to be exactly one token for the tokenizer
    in use (and fails loudly otherwise); ``"first"`` scores a split word by its first token, as
    Q-Align's scorer does (``tokenizer(word).input_ids[1]``).
    """

    level_words: tuple[str, ...] = LEVELS
    level_weights: tuple[float, ...] = field(default=LEVEL_WEIGHTS, init=False)
    score_question: str = SCORE_QUESTION
    score_answer_prefix: str = SCORE_ANSWER_PREFIX
    describe_instruction: str = DESCRIBE_INSTRUCTION
    image_position: Literal["after", "before"] = "after"
    level_token: Literal["single", "first"] = "single"
    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    num_beams: int = 1
    repetition_penalty: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "level_words", tuple(str(w) for w in self.level_words))
        if len(self.level_words) != len(LEVELS):
            raise ModelError(f"level_words must name the {len(LEVELS)} levels ({', '.join(LEVELS)}), "
                             f"got {list(self.level_words)}")
        if len(set(self.level_words)) != len(self.level_words) or not all(w.strip() for w in self.level_words):
            raise ModelError(f"level_words must be distinct non-empty words, got {list(self.level_words)}")
        if self.image_position not in IMAGE_POSITIONS:
            raise ModelError(f"image_position must be one of {IMAGE_POSITIONS}, got {self.image_position!r}")
        if self.level_token not in LEVEL_TOKEN_POLICIES:
            raise ModelError(f"level_token must be one of {LEVEL_TOKEN_POLICIES}, got {self.level_token!r}")
        if self.max_new_tokens < 1 or self.num_beams < 1:
            raise ModelError("max_new_tokens and num_beams must be >= 1")
        if self.do_sample and not (self.temperature > 0):
            raise ModelError(f"temperature must be > 0 when sampling, got {self.temperature}")

    @classmethod
    def split_options(cls, options: dict[str, Any]) -> tuple[MLLMSettings, dict[str, Any]]:
        """Take this class's fields out of ``options``; returns the settings and the other options."""
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        mine = {k: options.pop(k) for k in list(options) if k in names}
        return cls(**mine), options

    def generation_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model.generate`` (greedy unless ``do_sample``)."""
        kw: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
                              "num_beams": self.num_beams, "repetition_penalty": self.repetition_penalty}
        if self.do_sample:
            kw.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        else:  # neutral values, so a checkpoint's generation_config cannot turn sampling knobs on
            kw.update(temperature=None, top_p=None, top_k=None)
        return kw

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["level_words"] = list(self.level_words)
        d["level_weights"] = list(self.level_weights)
        return d


def join_prompt(prompt: str, continuation: str) -> str:
    """``prompt`` followed by ``continuation``, separated by one space unless the prompt ends in
    whitespace (a generation prompt ending ``"ASSISTANT:"`` gets ``" The color ..."``, one ending
    ``"assistant\\n"`` gets it directly)."""
    if not continuation:
        return prompt
    if not prompt or prompt[-1].isspace():
        return prompt + continuation
    return prompt + " " + continuation


def question_with_images(question: str, image_token: str, position: str, n_images: int = 2) -> str:
    """The user turn: ``question\\n<img><img>`` (``after``) or ``<img><img>\\nquestion`` (``before``)."""
    images = image_token * n_images
    return f"{question}\n{images}" if position == "after" else f"{images}\n{question}"
