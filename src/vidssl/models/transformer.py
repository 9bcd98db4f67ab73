"""Transformer pieces in OpenAI CLIP's state-dict layout (Radford et al. 2021).

A residual block has the keys ``ln_1.*``, ``attn.in_proj_weight``, ``attn.in_proj_bias``,
``attn.out_proj.*``, ``ln_2.*``, ``mlp.c_fc.*``, ``mlp.c_proj.*``, so CLIP checkpoints load
into it unchanged. Shared by the video ViT (``vidssl.models.backbones.clip_video``), the CLIP
text transformer (``vidssl.text.clip_text``) and the temporal modules (``vidssl.models.temporal``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the GELU approximation OpenAI CLIP was trained with."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 and cast back (as CLIP's, for fp16 / autocast safety)."""

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.float(), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.type_as(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names.

    x: (B, L, D) -> (B, L, D). ``causal=True`` masks future positions (CLIP's text encoder).
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if heads < 1 or width % heads:
            raise ValueError(f"SelfAttention: width {width} must be a multiple of heads {heads}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor, causal: bool = False) -> Tensor:
        """x: (B, L, D) -> (B, L, D)."""
        b, n, d = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, L, 3D)
        # (B, L, 3D) -> (B, L, 3, H, D/H) -> (3, B, H, L, D/H)
        q, k, v = qkv.view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # (B, H, L, D/H)
        out = out.transpose(1, 2).reshape(b, n, d)  # (B, H, L, D/H) -> (B, L, D)
        return self.out_proj(out)


def mlp(width: int, ratio: int = 4) -> nn.Sequential:
    """CLIP's FFN: ``c_fc`` (D -> 4D) -> QuickGELU -> ``c_proj`` (4D -> D)."""
    hidden = width * ratio
    return nn.Sequential(
        OrderedDict(
            [
                ("c_fc", nn.Linear(width, hidden)),
                ("gelu", QuickGELU()),
                ("c_proj", nn.Linear(hidden, width)),
            ]
        )
    )


class ResidualAttentionBlock(nn.Module):
    """Pre-LN block: x + attn(ln_1(x)), then + mlp(ln_2(x)). x: (B, L, D) -> (B, L, D)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.ln_2 = LayerNorm(width)
        self.mlp = mlp(width)

    def forward(self, x: Tensor, causal: bool = False) -> Tensor:
        """x: (B, L, D) -> (B, L, D)."""
        x = x + self.attn(self.ln_1(x), causal=causal)
        return x + self.mlp(self.ln_2(x))


def init_clip_blocks_(blocks: nn.ModuleList | list[nn.Module], width: int) -> None:
    """CLIP's random init (``model.py: initialize_parameters``) of a stack of residual blocks.

    in_proj ~ N(0, D^-1/2), out_proj / c_proj ~ N(0, D^-1/2 (2 L)^-1/2), c_fc ~ N(0, (2D)^-1/2).
    """
    layers = max(1, len(blocks))
    attn_std = width**-0.5
    proj_std = attn_std * (2 * layers) ** -0.5
    fc_std = (2 * width) ** -0.5
    for block in blocks:
        nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
        nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
        nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
        nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)


class Transformer(nn.Module):
    """``resblocks``: ``layers`` residual blocks. x: (B, L, D) -> (B, L, D)."""

    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.width, self.layers, self.heads = width, layers, heads
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))
        init_clip_blocks_(self.resblocks, width)

    def forward(self, x: Tensor, causal: bool = False) -> Tensor:
        """x: (B, L, D) -> (B, L, D)."""
        for block in self.resblocks:
            x = block(x, causal=causal)
        return x
