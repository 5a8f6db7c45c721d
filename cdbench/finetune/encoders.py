"""Turning a training item into supervised model inputs, one encoder per model family.

An encoder is a callable ``encoder(item, (image1, image2)) -> dict`` (one example) with a
``collate(examples) -> batch`` method. Examples hold 1-D ``input_ids`` / ``labels`` (labels are
:data:`~cdbench.finetune.data.IGNORE_INDEX` everywhere but on the answer and its end-of-turn token)
and the image tensors; ``collate`` right-pads the token sequences (the training code pads right)
and concatenates the image tensors in example order.

- :class:`ChatTemplateEncoder`: any Hugging Face image-text-to-text processor with a chat template
  (LLaVA, Qwen2-VL, Idefics, ...): the user turn holds both images and the prompt, the assistant
  turn the answer; the prompt is everything the template renders before the answer
  (``add_generation_prompt=True``).
- :class:`MplugOwl2Encoder`: the mPLUG-Owl2 conversation template and ``tokenizer_image_token``
  exactly as Q-Align's ``preprocess_v1`` (:mod:`cdbench.models.mplug_owl2`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cdbench.errors import DataError
from cdbench.finetune.data import IGNORE_INDEX, TrainItem, pad_right


def _square(images: Sequence[np.ndarray], mean: Sequence[float] | None, aspect: str) -> list:
    """With ``pad``, each image padded to a centred square of the processor's mean colour (Q-Align /
    LLaVA ``expand2square``, :func:`cdbench.models.mplug_owl2.image_processing.expand2square`)."""
    if aspect not in ("pad", "resize"):
        return list(images)
    from PIL import Image

    from cdbench.models.mplug_owl2.image_processing import expand2square

    out = []
    for im in images:
        pil = Image.fromarray(np.ascontiguousarray(im))
        if aspect == "pad":
            fill = tuple(int(x * 255) for x in (mean if mean is not None else (0.5, 0.5, 0.5)))
            pil = expand2square(pil, fill)
        else:
            edge = max(pil.size)
            pil = pil.resize((edge, edge))
        out.append(np.asarray(pil))
    return out


class ChatTemplateEncoder:
    """Supervised examples for a Hugging Face image-text-to-text processor with a chat template.

    ``image_position``: ``"before"`` puts the two images before the prompt text in the user turn
    (the M-SPCD training conversations, ``<img><img>\\n<question>``), ``"after"`` after it.
    """

    def __init__(self, processor: Any, *, image_position: str = "before", image_aspect_ratio: str = "none",
                 max_length: int = 2048):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        if getattr(processor, "chat_template", None) is None:
            raise DataError("the processor has no chat template; fine-tuning needs one to build conversations")
        self.image_position = image_position
        self.image_aspect_ratio = image_aspect_ratio
        self.max_length = max_length
        token = getattr(processor, "image_token", None)
        ids = {getattr(processor, "image_token_id", None)}
        if token is not None:
            ids.add(self.tokenizer.convert_tokens_to_ids(token))
        self.image_token_ids = {int(i) for i in ids if i is not None and i >= 0}
        if self.tokenizer.pad_token_id is None:  # batch encoding needs one; padding is masked anyway
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pad_token_id = int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0)
        self.image_mean = getattr(getattr(processor, "image_processor", None), "image_mean", None)

    def messages(self, item: TrainItem, with_answer: bool) -> list[dict]:
        images = [{"type": "image"}, {"type": "image"}]
        text = [{"type": "text", "text": item.prompt}]
        content = images + text if self.image_position == "before" else text + images
        msgs = [{"role": "user", "content": content}]
        if with_answer:
            msgs.append({"role": "assistant", "content": [{"type": "text", "text": item.answer}]})
        return msgs

    def texts(self, item: TrainItem) -> tuple[str, str]:
        """(prompt, full conversation) as the chat template renders them."""
        prompt = self.processor.apply_chat_template(self.messages(item, False), add_generation_prompt=True,
                                                    tokenize=False)
        full = self.processor.apply_chat_template(self.messages(item, True), tokenize=False)
        if not full.startswith(prompt):
            raise DataError(f"pair {item.pair_id}: the chat template does not render the generation prompt as a "
                            "prefix of the conversation, so the answer cannot be located")
        return prompt, full

    def __call__(self, item: TrainItem, images: tuple[np.ndarray, np.ndarray]) -> dict:
        import torch

        prompt, full = self.texts(item)
        images = _square(images, self.image_mean, self.image_aspect_ratio)
        enc = self.processor(text=[prompt, full], images=[images, images], padding=True, return_tensors="pt")
        mask = enc["attention_mask"]
        n_prompt, n_full = int(mask[0].sum()), int(mask[1].sum())
        if bool(mask[1, 0] == 0) or bool(mask[0, 0] == 0):  # left padding: move to the valid span
            ids_p = enc["input_ids"][0][mask[0].bool()]
            ids = enc["input_ids"][1][mask[1].bool()]
        else:
            ids_p, ids = enc["input_ids"][0, :n_prompt], enc["input_ids"][1, :n_full]
        same = int((ids[:n_prompt] == ids_p).cumprod(0).sum()) if n_prompt <= n_full else 0
        labels = ids.clone()
        labels[:same] = IGNORE_INDEX
        for t in self.image_token_ids:
            labels[ids == t] = IGNORE_INDEX
        if n_full > self.max_length:
            if same >= self.max_length:
                raise DataError(f"pair {item.pair_id}: the prompt with its images is {same} tokens, longer than "
                                f"model_max_length={self.max_length}")
            ids, labels = ids[:self.max_length], labels[:self.max_length]
        out = {"input_ids": ids.to(torch.long), "labels": labels.to(torch.long)}
        for k, v in enc.items():
            if k in ("input_ids", "attention_mask") or not hasattr(v, "shape"):
                continue
            if v.ndim >= 2 and v.shape[0] == 2 and v.shape[1] == mask.shape[1]:  # per-token (e.g. token types)
                out[k] = v[1][mask[1].bool()][: ids.shape[0]]
                out.setdefault("_token_keys", []).append(k)
            else:  # image tensors of both texts: keep those of one (the same images were given twice)
                out[k] = v[: v.shape[0] // 2] if v.shape[0] % 2 == 0 else v
        return out

    def collate(self, examples: Sequence[dict]) -> dict:
        return collate_examples(examples, self.pad_token_id)


def collate_examples(examples: Sequence[dict], pad_token_id: int) -> dict:
    """Right-pad the token tensors of ``examples`` and concatenate their image tensors.

    ``attention_mask`` is 1 on each example's real tokens and 0 on the padding; ``labels`` are
    padded with :data:`IGNORE_INDEX`, ``input_ids`` with ``pad_token_id``.
    """
    import torch

    ids = [e["input_ids"] for e in examples]
    batch = {"input_ids": pad_right(ids, pad_token_id),
             "labels": pad_right([e["labels"] for e in examples], IGNORE_INDEX)}
    lengths = torch.tensor([int(s.shape[0]) for s in ids])
    batch["attention_mask"] = (torch.arange(batch["input_ids"].shape[1])[None, :] < lengths[:, None]).long()
    token_keys = set(examples[0].get("_token_keys", ()))
    for k in examples[0]:
        if k in ("input_ids", "labels", "_token_keys"):
            continue
        values = [e[k] for e in examples]
        if k in token_keys:
            batch[k] = pad_right(values, 0)
        elif hasattr(values[0], "shape"):
            batch[k] = torch.cat(values, dim=0)
    return batch


class MplugOwl2Encoder:
    """Supervised examples for mPLUG-Owl2 exactly as Q-Align's ``preprocess_v1`` builds them.

    The conversation ``USER: <|image|><|image|>\\n<prompt> ASSISTANT: <answer></s>`` (the
    ``mplug_owl2`` template; the M-SPCD conversations put the images first, and the original's
    ``preprocess_multimodal`` moves them there), tokenised with ``tokenizer_image_token`` (one
    ``-200`` per image). Labels as ``preprocess_v1``: BOS and the instruction masked (its length is
    ``len(tokenizer_image_token(instruction + " ASSISTANT: ")) - 2``), the answer and ``</s>``
    supervised, and the whole example masked when the round lengths do not add up to the token
    count (the original's "tokenization mismatch" rule). Images: ``MPLUGOwl2ImageProcessor`` with
    ``image_aspect_ratio`` (``pad``: ``expand2square`` with the CLIP mean colour, as the recipe).
    The pad token is ``<unk>`` (id 0), as the training script sets it.
    """

    def __init__(self, tokenizer: Any, image_processor: Any, *, max_length: int = 2048, image_position: str = "before"):
        self.tokenizer = tokenizer
        self.image_position = image_position
        self.image_processor = image_processor
        self.max_length = max_length
        pad = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else 0)

    @classmethod
    def from_folder(cls, folder, *, image_aspect_ratio: str = "pad", max_length: int = 2048,
                    image_position: str = "before") -> MplugOwl2Encoder:
        from cdbench.models.mplug_owl2.image_processing import MPLUGOwl2ImageProcessor
        from cdbench.models.mplug_owl2.tokenization import load_tokenizer

        tokenizer = load_tokenizer(folder)  # tokenises as the original sentencepiece tokenizer
        processor = MPLUGOwl2ImageProcessor.from_pretrained(
            folder, image_aspect_ratio=None if image_aspect_ratio == "none" else image_aspect_ratio)
        return cls(tokenizer, processor, max_length=max_length, image_position=image_position)

    def conversation(self, item: TrainItem) -> str:
        from cdbench.models.mllm.settings import question_with_images
        from cdbench.models.mplug_owl2.conversation import DEFAULT_IMAGE_TOKEN, conv_templates

        conv = conv_templates["mplug_owl2"].copy()
        conv.append_message(conv.roles[0], question_with_images(item.prompt, DEFAULT_IMAGE_TOKEN,
                                                                 self.image_position))
        conv.append_message(conv.roles[1], item.answer)
        return conv.get_prompt()

    def tokenize(self, conversation: str):
        """``(input_ids, labels)`` of one rendered conversation, as ``preprocess_v1`` (see the class)."""
        import torch

        from cdbench.models.mplug_owl2.conversation import conv_templates, tokenizer_image_token

        conv = conv_templates["mplug_owl2"]
        ids = tokenizer_image_token(conversation, self.tokenizer, return_tensors="pt")
        target = ids.clone()
        total_len = int(target.ne(self.pad_token_id).sum())
        sep = conv.sep + conv.roles[1] + ": "
        cur_len = 1
        target[:cur_len] = IGNORE_INDEX
        for rou in conversation.split(conv.sep2):
            if rou == "":
                break
            parts = rou.split(sep)
            if len(parts) != 2:
                break
            parts[0] += sep
            round_len = len(tokenizer_image_token(rou, self.tokenizer))
            instruction_len = len(tokenizer_image_token(parts[0], self.tokenizer)) - 2
            target[cur_len:cur_len + instruction_len] = IGNORE_INDEX
            cur_len += round_len
        target[cur_len:] = IGNORE_INDEX
        if cur_len < self.max_length and cur_len != total_len:
            target[:] = IGNORE_INDEX  # the original's "tokenization mismatch ... (ignored)"
        return ids[:self.max_length].to(torch.long), target[:self.max_length].to(torch.long)

    def __call__(self, item: TrainItem, images: tuple[np.ndarray, np.ndarray]) -> dict:
        ids, labels = self.tokenize(self.conversation(item))
        pixel_values = self.image_processor(list(images), return_tensors="pt")
        return {"input_ids": ids, "labels": labels, "images": pixel_values}

    def collate(self, examples: Sequence[dict]) -> dict:
        return collate_examples(examples, self.pad_token_id)
