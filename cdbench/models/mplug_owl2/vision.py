"""The mPLUG-Owl2 vision tower: a CLIP-style ViT (``MplugOwlVisionModel`` of the original).

Conv patch embedding without bias, a learned CLS token, learned absolute position embeddings
(1 + g*g rows, no interpolation), ``pre_layernorm``, pre-LN blocks with a fused per-head
``query_key_value`` projection and a QuickGELU MLP (``x * sigmoid(1.702 x)``, Radford et al. 2021,
hard-coded as in the original whatever ``hidden_act`` says), and ``post_layernorm`` on every token.
The CLS token is kept: the abstractor sees all 1 + g*g tokens.

Reference: Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021; Ye et al., mPLUG-Owl2,
CVPR 2024 (``visual_encoder.py`` of the Q-Align / CD-Reasoning releases).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from cdbench.models.mplug_owl2.configuration import VisionConfig


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """QuickGELU, ``x * sigmoid(1.702 x)`` (the CLIP activation)."""
    return x * torch.sigmoid(1.702 * x)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, eager: bool) -> torch.Tensor:
    """Unmasked multi-head attention ``softmax(q k^T * scale) v`` on (B, heads, S, d) tensors.

    ``eager`` computes it with two matmuls and a float32 softmax (the original's arithmetic); otherwise
    ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient kernels on GPU).
    """
    if not eager:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
    return torch.matmul(probs, v)


class VisionEmbeddings(nn.Module):
    def __init__(self, config: VisionConfig):
        super().__init__()
        d = config.hidden_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.patch_embed = nn.Conv2d(config.num_channels, d, config.patch_size, config.patch_size, bias=False)
        self.position_embedding = nn.Parameter(torch.zeros(1, config.num_positions, d))
        self.pre_layernorm = nn.LayerNorm(d, eps=config.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embed(pixel_values.to(self.patch_embed.weight.dtype)).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(patches.shape[0], 1, -1).to(patches.dtype)
        x = torch.cat([cls, patches], dim=1)
        x = x + self.position_embedding[:, : x.shape[1]].to(x.dtype)
        return self.pre_layernorm(x)


class VisionAttention(nn.Module):
    """Self-attention with the fused ``query_key_value`` weight laid out per head: (heads, 3, head_dim)."""

    def __init__(self, config: VisionConfig, top_config):
        super().__init__()
        self.top_config = top_config  # its _attn_implementation picks eager vs SDPA
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scale = self.head_dim**-0.5
        self.query_key_value = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        qkv = self.query_key_value(x).view(b, s, self.num_heads, 3, self.head_dim).permute(3, 0, 2, 1, 4)
        eager = getattr(self.top_config, "_attn_implementation", "eager") == "eager"
        ctx = attention(qkv[0], qkv[1], qkv[2], self.scale, eager)
        return self.dense(ctx.transpose(1, 2).reshape(b, s, d))


class VisionMLP(nn.Module):
    def __init__(self, config: VisionConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(quick_gelu(self.fc1(x)))


class VisionEncoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: VisionConfig, top_config):
        super().__init__()
        self.self_attn = VisionAttention(config, top_config)
        self.input_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = VisionMLP(config)
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class VisionEncoder(nn.Module):
    def __init__(self, config: VisionConfig, top_config):
        super().__init__()
        self.layers = nn.ModuleList([VisionEncoderLayer(config, top_config) for _ in range(config.num_hidden_layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MplugOwlVisionModel(nn.Module):
    """``pixel_values`` (N, 3, S, S) -> last hidden state (N, 1 + g*g, D) after ``post_layernorm``."""

    def __init__(self, config: VisionConfig, top_config=None):
        super().__init__()
        self.config = config
        self.embeddings = VisionEmbeddings(config)
        self.encoder = VisionEncoder(config, top_config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (self.config.num_channels, size, size):
            raise ValueError(
                f"pixel_values must have shape (N, {self.config.num_channels}, {size}, {size}), "
                f"got {tuple(pixel_values.shape)}"
            )
        return self.post_layernorm(self.encoder(self.embeddings(pixel_values)))
