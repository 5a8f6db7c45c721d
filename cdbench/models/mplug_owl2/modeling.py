"""mPLUG-Owl2 on current transformers: LLaMA-2 with the modality-adaptive module, plus the vision parts.

``MPLUGOwl2LlamaForCausalLM`` loads the released Q-Align / CD-Reasoning checkpoints unchanged (same
keys) and reproduces the original implementation's numbers, with:

* image insertion: every ``IMAGE_TOKEN_INDEX`` (-200) in ``input_ids`` is replaced by the Q + 1 rows
  of one image (abstractor queries, then ``vit_eos``); with a stacked ``images`` tensor the k-th -200
  of the batch (scanned sample by sample, left to right) takes ``images[k]``; with a list (or 5-D
  tensor) of per-sample frames, each -200 takes all frames of the next sample (Q-Align's video path);
* the modality-adaptive module: ``input_layernorm``, ``post_attention_layernorm``, ``k_proj`` and
  ``v_proj`` have a text (``multiway.0``) and a visual (``multiway.1``) copy, selected per position by
  the modality indicator (1 on image rows);
* what the original lacks: SDPA / flash attention besides eager, left padding and mixed-length
  batches (attention mask and position ids derived from the mask), batched generation through
  ``DynamicCache`` and ``GenerationMixin.generate``, bf16, gradient checkpointing.

Reference: Ye et al., "mPLUG-Owl2: Revolutionizing Multi-modal Large Language Model with Modality
Collaboration", CVPR 2024 (modality-adaptive module, Sec. 3.2); Touvron et al., "Llama 2", 2023;
Su et al., "RoFormer" (rotary embeddings, rotate-half pairing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama.modeling_llama import (
    LlamaMLP,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
    eager_attention_forward,
)

from cdbench.errors import ModelError
from cdbench.models.mplug_owl2.abstractor import AbstractorMultiHeadAttention, MplugOwlVisualAbstractorModel
from cdbench.models.mplug_owl2.configuration import MPLUGOwl2Config
from cdbench.models.mplug_owl2.vision import MplugOwlVisionModel

IMAGE_TOKEN_INDEX = -200
IGNORE_INDEX = -100

PaddingSide = Literal["auto", "left", "right"]


@dataclass
class ModalityRouting:
    """Which rows of a (B, T) batch are visual, computed once per forward and shared by every layer.

    ``text_index`` / ``visual_index`` index the flattened (B * T) rows, so the multiway modules
    gather and scatter without a host synchronisation per layer.
    """

    visual: torch.Tensor  # (B, T) bool
    text_index: torch.Tensor  # (n_text,) long
    visual_index: torch.Tensor  # (n_visual,) long

    @classmethod
    def from_indicators(cls, modality_indicators: torch.Tensor | None) -> ModalityRouting | None:
        """``None`` (all text: every module takes its text branch) or the routing of the visual rows."""
        if modality_indicators is None:
            return None
        visual = modality_indicators.bool()
        flat = visual.reshape(-1)
        visual_index = flat.nonzero().squeeze(1)
        if visual_index.numel() == 0:
            return None
        return cls(visual, (~flat).nonzero().squeeze(1), visual_index)


class MultiwayNetwork(nn.Module):
    """Two copies of a module; row ``i`` goes through ``multiway[modality[i]]`` (0 = text, 1 = visual).

    The modality-adaptive module of mPLUG-Owl2 (Ye et al., CVPR 2024, Sec. 3.2). RMSNorms share the
    normalisation and only pick the weight per row (bit-identical to running each copy on its rows);
    linear layers run each copy on its own rows only.
    """

    def __init__(self, module_provider: Callable[[], nn.Module], num_multiway: int = 2):
        super().__init__()
        self.multiway = nn.ModuleList([module_provider() for _ in range(num_multiway)])

    def forward(self, hidden_states: torch.Tensor, routing: ModalityRouting | None) -> torch.Tensor:
        if routing is None or len(self.multiway) == 1:
            return self.multiway[0](hidden_states)
        text, visual = self.multiway
        if isinstance(text, LlamaRMSNorm) and text.variance_epsilon == visual.variance_epsilon:
            dtype = hidden_states.dtype
            x = hidden_states.to(torch.float32)
            x = (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + text.variance_epsilon)).to(dtype)
            weight = torch.where(routing.visual[..., None], visual.weight, text.weight)
            return weight * x
        flat = hidden_states.reshape(-1, hidden_states.shape[-1])
        out_text = text(flat.index_select(0, routing.text_index))
        out_visual = visual(flat.index_select(0, routing.visual_index))
        out = out_text.new_empty(flat.shape[0], out_text.shape[-1])
        out.index_copy_(0, routing.text_index, out_text)
        out.index_copy_(0, routing.visual_index, out_visual.to(out.dtype))
        return out.view(*hidden_states.shape[:-1], out.shape[-1])


class MPLUGOwl2Attention(nn.Module):
    """LLaMA attention whose key/value projections are modality-adaptive (``MultiwayNetwork``)."""

    def __init__(self, config: MPLUGOwl2Config, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = True
        h, kv, bias = config.hidden_size, config.num_key_value_heads * self.head_dim, config.attention_bias
        self.q_proj = nn.Linear(h, config.num_attention_heads * self.head_dim, bias=bias)
        self.k_proj = MultiwayNetwork(lambda: nn.Linear(h, kv, bias=bias))
        self.v_proj = MultiwayNetwork(lambda: nn.Linear(h, kv, bias=bias))
        self.o_proj = nn.Linear(config.num_attention_heads * self.head_dim, h, bias=bias)

    def forward(self, hidden_states, routing, position_embeddings, attention_mask, cache=None, **kwargs):
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        q = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        k = self.k_proj(hidden_states, routing).view(hidden_shape).transpose(1, 2)
        v = self.v_proj(hidden_states, routing).view(hidden_shape).transpose(1, 2)
        cos, sin = position_embeddings
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        out, _ = attention_interface(
            self, q, k, v, attention_mask,
            dropout=0.0 if not self.training else self.attention_dropout, scaling=self.scaling, **kwargs,
        )
        return self.o_proj(out.reshape(*input_shape, -1).contiguous())


class MPLUGOwl2DecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: MPLUGOwl2Config, layer_idx: int):
        super().__init__()
        self.self_attn = MPLUGOwl2Attention(config, layer_idx)
        self.mlp = LlamaMLP(config)
        self.input_layernorm = MultiwayNetwork(lambda: LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps))
        self.post_attention_layernorm = MultiwayNetwork(
            lambda: LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        )

    def forward(self, hidden_states, routing: ModalityRouting | None = None, attention_mask=None,
                position_embeddings=None, cache=None, **kwargs):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states, routing)
        hidden_states = self.self_attn(hidden_states, routing, position_embeddings, attention_mask, cache=cache,
                                       **kwargs)
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states, routing)
        return residual + self.mlp(hidden_states)


class MPLUGOwl2PreTrainedModel(PreTrainedModel):
    config_class = MPLUGOwl2Config
    config: MPLUGOwl2Config
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MPLUGOwl2DecoderLayer", "VisionEncoderLayer", "AbstractorLayer"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # checkpoints from the original conversion script may carry the rotary buffers; they are recomputed
    _keys_to_ignore_on_load_unexpected = [r"rotary_emb\.inv_freq"]
    # fixed sin-cos tables, recomputed from the config when a checkpoint does not store them
    _keys_to_ignore_on_load_missing = [r"q_pos_embed", r"k_pos_embed"]

    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, AbstractorMultiHeadAttention):
            from cdbench.models.mplug_owl2.abstractor import key_pos_embed, query_pos_embed

            init.copy_(module.q_pos_embed, query_pos_embed(module.config))
            init.copy_(module.k_pos_embed, key_pos_embed(module.config))
        elif isinstance(module, MplugOwlVisualAbstractorModel):
            init.normal_(module.query_embeds, mean=0.0, std=std)
            init.normal_(module.vit_eos, mean=0.0, std=std)
        elif type(module).__name__ == "VisionEmbeddings":
            init.normal_(module.cls_token, mean=0.0, std=std)
            init.normal_(module.position_embedding, mean=0.0, std=std)


class MPLUGOwl2LlamaModel(MPLUGOwl2PreTrainedModel):
    """The LLaMA decoder with modality-adaptive layers, and the vision tower and abstractor it reads."""

    def __init__(self, config: MPLUGOwl2Config):
        super().__init__(config)
        config.validate_architecture()
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList([MPLUGOwl2DecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.vision_model = MplugOwlVisionModel(config.vision_config, config)
        self.visual_abstractor = MplugOwlVisualAbstractorModel(config.abstractor_config, config.hidden_size, config)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        modality_indicators: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and cache is None and not self.training:
            cache = DynamicCache(config=self.config)
        if position_ids is None:
            past = cache.get_seq_length() if cache is not None else 0
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device).unsqueeze(0) + past
        causal_mask = create_causal_mask(
            config=self.config, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
            cache=cache, position_ids=position_ids,
        )
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)
        routing = ModalityRouting.from_indicators(modality_indicators)
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        all_hidden = [] if output_hidden_states else None
        for layer in self.layers[: self.config.num_hidden_layers]:
            if all_hidden is not None:
                all_hidden.append(hidden_states)
            hidden_states = layer(
                hidden_states, routing, attention_mask=causal_mask,
                position_embeddings=position_embeddings, cache=cache, position_ids=position_ids, **kwargs,
            )
        hidden_states = self.norm(hidden_states)
        if all_hidden is not None:
            all_hidden.append(hidden_states)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            cache=cache if use_cache else None,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
        )


@dataclass
class MultimodalInputs:
    """A batch after image insertion: what the LLM decoder receives (see ``prepare_multimodal_inputs``)."""

    inputs_embeds: torch.Tensor
    """(B, T, H) text embeddings and image rows; padding rows are zeros."""
    attention_mask: torch.Tensor
    """(B, T) int64, 1 on valid rows."""
    position_ids: torch.Tensor
    """(B, T) int64, 0.. over the valid rows of each sample (1 on padding rows)."""
    modality_indicators: torch.Tensor
    """(B, T) int64, 1 on image rows, 0 on text and padding."""
    labels: torch.Tensor | None
    """(B, T) labels with -100 on image and padding rows (when labels were given)."""


def _as_feature_blocks(image_features: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(image_features, torch.Tensor):
        return list(image_features.unbind(0))
    return list(image_features)


class MPLUGOwl2LlamaForCausalLM(MPLUGOwl2PreTrainedModel, GenerationMixin):
    """mPLUG-Owl2 for causal LM: ``forward(input_ids, attention_mask, images=..., labels=...)`` and ``generate``."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: MPLUGOwl2Config):
        super().__init__(config)
        self.model = MPLUGOwl2LlamaModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_model(self) -> MPLUGOwl2LlamaModel:
        return self.model

    # ----------------------------------------------------------------------------------- images
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values`` (N, 3, S, S) -> image features (N, Q + 1, H): the rows that replace a -200."""
        weight = self.model.vision_model.embeddings.patch_embed.weight
        vision = self.model.vision_model(pixel_values.to(device=weight.device, dtype=weight.dtype))
        return self.model.visual_abstractor(vision)

    def _image_feature_blocks(self, images) -> list[torch.Tensor]:
        """One (rows, H) block per image slot: per image (stacked 4-D) or per sample's frames (list / 5-D)."""
        if isinstance(images, (list, tuple)) or (isinstance(images, torch.Tensor) and images.ndim == 5):
            frames = [torch.as_tensor(x) for x in images]
            frames = [x.unsqueeze(0) if x.ndim == 3 else x for x in frames]
            feats = self.encode_images(torch.cat(frames, dim=0))
            return [f.flatten(0, 1) for f in torch.split(feats, [x.shape[0] for x in frames], dim=0)]
        if not isinstance(images, torch.Tensor) or images.ndim not in (3, 4):
            raise ModelError("images must be a (N, 3, S, S) tensor, a 5-D tensor or a list of (n_i, 3, S, S) tensors")
        if images.ndim == 3:
            images = images.unsqueeze(0)
        return _as_feature_blocks(self.encode_images(images))

    def prepare_multimodal_inputs(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        images=None,
        labels: torch.LongTensor | None = None,
        *,
        image_features: torch.Tensor | Sequence[torch.Tensor] | None = None,
        padding_side: PaddingSide = "auto",
    ) -> MultimodalInputs:
        """Replace each -200 in ``input_ids`` by its image rows and pack the batch.

        ``images``: a stacked (N, 3, S, S) tensor (the k-th -200 of the batch, scanned sample by sample,
        takes ``images[k]``), or a list / 5-D tensor of per-sample frames (each -200 takes all frames of
        the next block, as the original's video path). ``image_features`` may be given instead (the
        output of :meth:`encode_images`, or a list of (rows, H) blocks) to encode images elsewhere.
        As in the original, a sample without any -200 consumes one image slot when ``images`` holds one
        more image per such sample than there are placeholders (its image is ignored).

        Tokens where ``attention_mask`` is 0 are padding and are dropped; each sample's valid rows are
        packed to the right (``padding_side="left"``, what generation needs) or to the left
        (``"right"``); ``"auto"`` keeps the input's padding side (right when there is none).
        """
        if input_ids.ndim != 2:
            raise ModelError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
        device = self.model.embed_tokens.weight.device
        input_ids = input_ids.to(device)
        b, length = input_ids.shape
        keep = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.to(
            device).bool()
        is_image = input_ids == IMAGE_TOKEN_INDEX
        if bool((is_image & ~keep).any()):
            raise ModelError("an image placeholder (-200) sits on a padding position (attention_mask 0)")
        if padding_side == "auto":
            left = attention_mask is not None and bool((~keep[:, 0]).any()) and bool(keep[:, -1].all())
            padding_side = "left" if left else "right"

        # image feature blocks, in the order the -200 placeholders consume them
        if image_features is None:
            blocks = self._image_feature_blocks(images) if images is not None else []
        else:
            blocks = _as_feature_blocks(image_features)
        n_placeholders = int(is_image.sum())
        per_sample = is_image.sum(1)
        text_only = per_sample == 0
        if len(blocks) == n_placeholders:
            consumes = per_sample
        elif len(blocks) == n_placeholders + int(text_only.sum()):
            consumes = torch.where(text_only, torch.ones_like(per_sample), per_sample)  # the original's dummy slot
        else:
            raise ModelError(f"got {len(blocks)} images for {n_placeholders} image placeholders (-200) in input_ids")
        slot_base = torch.cumsum(consumes, 0) - consumes  # first slot of each sample
        rank_in_sample = torch.cumsum(is_image.long(), 1) - 1  # placeholder number within its sample
        slots = (slot_base[:, None] + rank_in_sample)[is_image]  # slot of each placeholder, row-major order
        hidden = self.model.embed_tokens.weight.shape[1]
        dtype = self.model.embed_tokens.weight.dtype
        feats = [blocks[i] for i in slots.tolist()]
        block_len = torch.tensor([f.shape[0] for f in feats], dtype=torch.long, device=device)

        # rows each input position occupies after expansion, and where they start
        rows = keep.long()
        rows[is_image] = block_len
        new_len = rows.sum(1)
        t = int(new_len.max()) if b else 0
        start = torch.cumsum(rows, 1) - rows
        if padding_side == "left":
            start = start + (t - new_len)[:, None]

        embeds = torch.zeros(b, t, hidden, dtype=dtype, device=device)
        mask = torch.zeros(b, t, dtype=torch.long, device=device)
        modality = torch.zeros(b, t, dtype=torch.long, device=device)
        new_labels = None if labels is None else torch.full((b, t), IGNORE_INDEX, dtype=labels.dtype, device=device)

        text = keep & ~is_image
        tb, tl = text.nonzero(as_tuple=True)
        embeds[tb, start[tb, tl]] = self.model.embed_tokens(input_ids[tb, tl])
        mask[tb, start[tb, tl]] = 1
        if new_labels is not None:
            new_labels[tb, start[tb, tl]] = labels.to(device)[tb, tl]
        if feats:
            ib, il = is_image.nonzero(as_tuple=True)
            row_b = torch.repeat_interleave(ib, block_len)
            first = torch.repeat_interleave(start[ib, il], block_len)
            offset = torch.arange(int(block_len.sum()), device=device) - torch.repeat_interleave(
                torch.cumsum(block_len, 0) - block_len, block_len)
            row_t = first + offset
            embeds[row_b, row_t] = torch.cat(feats, 0).to(device=device, dtype=dtype)
            mask[row_b, row_t] = 1
            modality[row_b, row_t] = 1
        position_ids = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        return MultimodalInputs(embeds, mask, position_ids, modality, new_labels)

    def prepare_inputs_labels_for_multimodal(self, input_ids, attention_mask, past_key_values, labels, images):
        """The original's entry point: ``(None, modality_indicators, attention_mask, past_key_values,
        inputs_embeds, labels)`` after image insertion (right-packed batch, as the original)."""
        if images is None or input_ids.shape[1] == 1:
            return input_ids, torch.zeros_like(input_ids), attention_mask, past_key_values, None, labels
        mm = self.prepare_multimodal_inputs(input_ids, attention_mask, images, labels, padding_side="right")
        return None, mm.modality_indicators, mm.attention_mask, past_key_values, mm.inputs_embeds, mm.labels

    # ---------------------------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        images=None,
        return_dict: bool | None = None,
        *,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        modality_indicators: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Drop-in for the original ``forward`` (same positional order): ``input_ids`` may hold -200 image
        placeholders, ``images`` a stacked (N, 3, S, S) tensor or a list of per-sample frame tensors; the
        logits cover the expanded rows. ``past_key_values`` is the old name of ``cache``. Also accepts
        precomputed ``inputs_embeds`` with ``modality_indicators`` and ``position_ids``
        (:meth:`prepare_multimodal_inputs`), and ``logits_to_keep`` (last rows only)."""
        cache = past_key_values if cache is None else cache
        if output_attentions:
            raise ModelError("output_attentions is not supported (use attn_implementation='eager' and hooks)")
        past = cache.get_seq_length() if isinstance(cache, Cache) else 0
        if input_ids is not None and bool((input_ids == IMAGE_TOKEN_INDEX).any()):
            if past:
                raise ModelError("image placeholders (-200) can only be given in the first (prefill) forward")
            if images is None:
                raise ModelError("input_ids hold image placeholders (-200) but no images were given")
            mm = self.prepare_multimodal_inputs(input_ids, attention_mask, images, labels)
            input_ids, inputs_embeds = None, mm.inputs_embeds
            attention_mask, position_ids = mm.attention_mask, mm.position_ids
            modality_indicators, labels = mm.modality_indicators, mm.labels
        elif images is not None and input_ids is not None and past == 0 and input_ids.shape[1] > 1:
            # the original consumes one image per text-only sample; nothing is inserted
            modality_indicators = None
        if attention_mask is not None and attention_mask.ndim == 2:
            q_len = (input_ids if input_ids is not None else inputs_embeds).shape[1]
            if attention_mask.shape[1] != past + q_len:
                if not bool(attention_mask.bool().all()):
                    raise ModelError(
                        f"attention_mask has {attention_mask.shape[1]} columns but the cache holds {past} expanded "
                        f"rows plus {q_len} new ones; use generate(), or pass the expanded mask "
                        "(prepare_multimodal_inputs) when decoding by hand"
                    )
                # the original rebuilds an all-ones mask while decoding
                attention_mask = attention_mask.new_ones(attention_mask.shape[0], past + q_len)
            if position_ids is None:  # positions count the valid rows only (left padding)
                position_ids = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)[:, -q_len:]

        outputs = self.model(
            input_ids=input_ids, modality_indicators=modality_indicators, attention_mask=attention_mask,
            position_ids=position_ids, cache=cache, inputs_embeds=inputs_embeds, use_cache=use_cache,
            output_hidden_states=output_hidden_states, **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        if logits_to_keep:
            hidden_states = hidden_states[:, -logits_to_keep:]
        logits = self.lm_head(hidden_states)
        loss = None
        if labels is not None:
            shift_logits = logits[..., :-1, :].float().reshape(-1, logits.shape[-1])
            shift_labels = labels[..., 1:].reshape(-1).to(shift_logits.device)
            loss = F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX)
        return CausalLMOutputWithPast(
            loss=loss, logits=logits, cache=outputs.cache, hidden_states=outputs.hidden_states,
        )

    # ------------------------------------------------------------------------------- generation
    def prepare_inputs_for_generation(self, input_ids, cache=None, attention_mask=None, inputs_embeds=None,
                                      is_first_iteration=False, **kwargs):
        modality = kwargs.pop("modality_indicators", None)
        images = kwargs.pop("images", None)
        model_inputs = super().prepare_inputs_for_generation(
            input_ids, cache=cache, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
            is_first_iteration=is_first_iteration, **kwargs,
        )
        if is_first_iteration:
            model_inputs["modality_indicators"] = modality
            model_inputs["images"] = images
        return model_inputs

    @torch.no_grad()
    def generate(self, inputs: torch.Tensor | None = None, images=None, attention_mask: torch.Tensor | None = None,
                 **kwargs):
        """``generate(input_ids, images=..., attention_mask=..., max_new_tokens=...)`` as the original.

        Prompts may be padded on either side and differ in length: the prompts are expanded and
        packed to the right (left padding), so every sample is decoded correctly in one batch. The
        returned sequences are ``input_ids`` followed by the new tokens, as the original returns them.
        """
        input_ids = inputs if inputs is not None else kwargs.pop("input_ids", None)
        if input_ids is None or not bool((input_ids == IMAGE_TOKEN_INDEX).any()):
            return super().generate(input_ids, attention_mask=attention_mask, **kwargs)
        if images is None:
            raise ModelError("input_ids hold image placeholders (-200) but no images were given")
        if "max_length" in kwargs and "max_new_tokens" not in kwargs:  # the original counts the prompt's ids
            kwargs["max_new_tokens"] = max(int(kwargs.pop("max_length")) - input_ids.shape[1], 1)
        mm = self.prepare_multimodal_inputs(input_ids, attention_mask, images, padding_side="left")
        out = super().generate(
            inputs_embeds=mm.inputs_embeds, attention_mask=mm.attention_mask, position_ids=mm.position_ids,
            modality_indicators=mm.modality_indicators, **kwargs,
        )
        new_tokens = out if isinstance(out, torch.Tensor) else out.sequences
        prompts = input_ids.to(new_tokens.device)
        if new_tokens.shape[0] != prompts.shape[0]:  # num_return_sequences > 1
            prompts = prompts.repeat_interleave(new_tokens.shape[0] // prompts.shape[0], dim=0)
        sequences = torch.cat([prompts, new_tokens], dim=1)
        if isinstance(out, torch.Tensor):
            return sequences
        out.sequences = sequences
        return out
