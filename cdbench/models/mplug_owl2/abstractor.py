"""The mPLUG-Owl2 visual abstractor: learned queries cross-attending to the ViT tokens.

Per layer, with ``x`` the queries and ``e`` the (fixed) ViT output:
``h = norm1(x)``; ``kv = [h ; normk(e)]`` (along the sequence); ``key = W_k(kv + [q_pos ; k_pos])``,
``value = W_v(kv)``, ``query = W_q(h + q_pos)``; ``ctx = softmax(q k^T / sqrt(d)) v``;
``out = h + out_proj(ctx)`` (the residual is the NORMALISED ``h``); ``out = out + mlp(norm2(out))``
with ``mlp(z) = w2(ffn_ln(silu(w1 z) * w3 z))``. ``norm1``/``normk``/``norm2`` use the LayerNorm
default eps 1e-5 (hard-coded in the original), ``ffn_ln`` the config eps. ``q_pos`` is the 1-D
sin-cos table of the query index, ``k_pos`` the 2-D MAE sin-cos table of the patch grid with a zero
row for CLS. After the last layer: ``visual_fc`` to the LLM width, then the learned ``vit_eos`` row.

Reference: Ye et al., mPLUG-Owl2, CVPR 2024 (``visual_encoder.py`` of the Q-Align release);
He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022 (``pos_embed.py``, sin-cos).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from cdbench.models.mplug_owl2.configuration import AbstractorConfig
from cdbench.models.mplug_owl2.vision import attention


def sincos_1d(embed_dim: int, pos: np.ndarray) -> np.ndarray:
    """1-D sin-cos embedding (MAE ``get_1d_sincos_pos_embed_from_grid``): [sin(p w) | cos(p w)], float32 math."""
    if embed_dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dimension, got {embed_dim}")
    omega = np.arange(embed_dim // 2, dtype=np.float32)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000**omega
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(embed_dim: int, grid_size: int, cls_token: bool = True) -> np.ndarray:
    """2-D sin-cos embedding of a grid (MAE ``get_2d_sincos_pos_embed``), a zero row first for CLS."""
    grid = np.meshgrid(np.arange(grid_size, dtype=np.float32), np.arange(grid_size, dtype=np.float32))
    grid = np.stack(grid, axis=0).reshape(2, 1, grid_size, grid_size)
    emb = np.concatenate([sincos_1d(embed_dim // 2, grid[0]), sincos_1d(embed_dim // 2, grid[1])], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)
    return emb


def query_pos_embed(config: AbstractorConfig) -> torch.Tensor:
    """The abstractor's ``q_pos_embed`` buffer (Q, D)."""
    pos = np.arange(config.num_learnable_queries, dtype=np.float32)
    return torch.from_numpy(sincos_1d(config.hidden_size, pos)).float()


def key_pos_embed(config: AbstractorConfig) -> torch.Tensor:
    """The abstractor's ``k_pos_embed`` buffer (1 + g*g, D)."""
    return torch.from_numpy(sincos_2d(config.hidden_size, config.grid_size, cls_token=True)).float()


class AbstractorMLP(nn.Module):
    def __init__(self, config: AbstractorConfig):
        super().__init__()
        self.w1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.w2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.w3 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_ln = nn.LayerNorm(config.intermediate_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(self.ffn_ln(F.silu(self.w1(x)) * self.w3(x)))


class AbstractorMultiHeadAttention(nn.Module):
    def __init__(self, config: AbstractorConfig, top_config):
        super().__init__()
        self.top_config = top_config
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.encoder_hidden_size, config.hidden_size)
        self.value = nn.Linear(config.encoder_hidden_size, config.hidden_size)
        self.register_buffer("q_pos_embed", query_pos_embed(config), persistent=True)
        self.register_buffer("k_pos_embed", key_pos_embed(config), persistent=True)

    def reset_pos_embed(self) -> None:
        """Recompute the fixed sin-cos tables (for checkpoints that do not store them)."""
        with torch.no_grad():
            self.q_pos_embed.copy_(query_pos_embed(self.config))
            self.k_pos_embed.copy_(key_pos_embed(self.config))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, h: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        qk_pos = torch.cat([self.q_pos_embed, self.k_pos_embed], dim=0).unsqueeze(0).to(kv.dtype)
        key = self._heads(self.key(kv + qk_pos))
        value = self._heads(self.value(kv))
        query = self._heads(self.query(h + self.q_pos_embed.unsqueeze(0).to(h.dtype)))
        eager = getattr(self.top_config, "_attn_implementation", "eager") == "eager"
        ctx = attention(query, key, value, self.head_dim**-0.5, eager)
        return ctx.transpose(1, 2).reshape(h.shape[0], h.shape[1], -1)


class AbstractorCrossOutput(nn.Module):
    def __init__(self, config: AbstractorConfig):
        super().__init__()
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm2 = nn.LayerNorm(config.hidden_size)  # default eps 1e-5, as the original
        self.mlp = AbstractorMLP(config)

    def forward(self, ctx: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        x = residual + self.out_proj(ctx)
        return x + self.mlp(self.norm2(x))


class AbstractorCrossAttention(nn.Module):
    def __init__(self, config: AbstractorConfig, top_config):
        super().__init__()
        self.attention = AbstractorMultiHeadAttention(config, top_config)
        self.output = AbstractorCrossOutput(config)
        self.norm1 = nn.LayerNorm(config.hidden_size)  # default eps 1e-5, as the original
        self.normk = nn.LayerNorm(config.hidden_size)

    def forward(self, queries: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
        h = self.norm1(queries)
        kv = torch.cat([h, self.normk(vision)], dim=1)
        return self.output(self.attention(h, kv), h)


class AbstractorLayer(GradientCheckpointingLayer):
    def __init__(self, config: AbstractorConfig, top_config):
        super().__init__()
        self.crossattention = AbstractorCrossAttention(config, top_config)

    def forward(self, queries: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
        return self.crossattention(queries, vision)


class AbstractorEncoder(nn.Module):
    def __init__(self, config: AbstractorConfig, top_config):
        super().__init__()
        self.layers = nn.ModuleList([AbstractorLayer(config, top_config) for _ in range(config.num_hidden_layers)])


class MplugOwlVisualAbstractorModel(nn.Module):
    """ViT tokens (N, 1 + g*g, D) -> image features (N, Q + 1, H_llm): Q projected queries, then ``vit_eos``."""

    def __init__(self, config: AbstractorConfig, language_hidden_size: int, top_config=None):
        super().__init__()
        self.config = config
        self.encoder = AbstractorEncoder(config, top_config)
        self.visual_fc = nn.Linear(config.hidden_size, language_hidden_size)
        self.query_embeds = nn.Parameter(torch.zeros(1, config.num_learnable_queries, config.hidden_size))
        self.vit_eos = nn.Parameter(torch.zeros(1, 1, language_hidden_size))

    def forward(self, vision_hidden_states: torch.Tensor) -> torch.Tensor:
        n = vision_hidden_states.shape[0]
        x = self.query_embeds.expand(n, -1, -1)
        for layer in self.encoder.layers:
            x = layer(x, vision_hidden_states)
        out = self.visual_fc(x)
        return torch.cat([out, self.vit_eos.expand(n, -1, -1).to(out.dtype)], dim=1)
