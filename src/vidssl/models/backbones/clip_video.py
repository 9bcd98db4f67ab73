"""Video ViT encoder of the language-video model (seed 004, Sec. 3.2, Fig. 2).

A CLIP ViT reads the T frames of a clip as T images of patches (eq. 2). Each of its L layers:

1. message tokens: every frame's class token through a linear layer, ``m_t = linear(y_t0)``
   (eq. 3);
2. temporal modelling of the T message tokens, ``M^ = M + TWS(M)`` (eqs. 4-8), or one of the
   Table 1 alternatives (``temporal=`` a key of ``vidssl.models.temporal.TEMPORAL_MODULES``);
3. intra-frame spatial attention (IFSA): CLIP's attention within each frame over
   [frame tokens, message token] (eq. 9); the message token's output is dropped;
4. CLIP's FFN on the frame tokens only (eq. 10), so message tokens never reach the next layer.

At the end each frame's class token (after ``ln_post`` and ``proj``, i.e. in the joint
embedding space, as X-CLIP) gets the temporal position embedding E_temp and goes through
``h_delta`` (``final_temporal=``, a temporal transformer by default, Table 2), and the T results
are averaged into the video embedding v (eqs. 11-12).

Image-tower parameters use OpenAI CLIP's names (``conv1``, ``class_embedding``,
``positional_embedding``, ``ln_pre``, ``transformer.resblocks.N.{ln_1, attn, ln_2, mlp}``,
``ln_post``, ``proj``), so ``visual.*`` of a CLIP checkpoint loads directly; the new modules
(``message_fc``, ``message_temporal``, ``temporal_embedding``, ``temporal_model``, ``head``)
are randomly initialised (Sec. 4.2).

Departures: ``temporal="none"`` removes the message tokens altogether (the CLIP baseline 2 of
Table 1); a clip with T != ``num_frames`` frames gets E_temp linearly interpolated in time and
frames of another size than ``image_size`` get the spatial position embedding bicubically
interpolated (the paper always uses 8 or 16 frames of 224 x 224).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidssl.models.backbones.base import Backbone, VideoTokens, linear_head
from vidssl.models.clip_load import (
    ClipCheckpoint,
    VisionConfig,
    check_load_result,
    load_clip_checkpoint,
)
from vidssl.models.temporal import TEMPORAL_MODULES, create_temporal, init_new_module_
from vidssl.models.transformer import LayerNorm, ResidualAttentionBlock, init_clip_blocks_

# CLIP's image normalisation (OpenAI ``clip.py`` preprocessing), for the data recipe.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

VISION_ARCHS: dict[str, VisionConfig] = {
    "ViT-B/32": VisionConfig(image_size=224, patch_size=32, width=768, layers=12, heads=12),
    "ViT-B/16": VisionConfig(image_size=224, patch_size=16, width=768, layers=12, heads=12),
    "tiny": VisionConfig(image_size=32, patch_size=8, width=64, layers=2, heads=2, embed_dim=32),
}

# State-dict key fragments of the modules that are not in CLIP (randomly initialised).
NEW_MODULE_KEYS = ("message_fc.", "message_temporal.", "temporal_embedding", "temporal_model.")


class MessageBlock(ResidualAttentionBlock):
    """One layer of Fig. 2: message token (eq. 3) -> temporal module (eq. 4) -> IFSA (eq. 9) -> FFN.

    x: (N*T, 1 + P, D) frame tokens, frame-major within each clip -> (N*T, 1 + P, D).
    With ``temporal="none"`` it is CLIP's plain residual block.
    """

    def __init__(self, width: int, heads: int, temporal: str, temporal_heads: int) -> None:
        super().__init__(width, heads)
        self.use_message = temporal != "none"
        if self.use_message:
            self.message_fc = nn.Linear(width, width)
            self.message_temporal = create_temporal(temporal, width, heads=temporal_heads)
            init_new_module_(self.message_fc)

    def forward(self, x: Tensor, num_frames: int = 1) -> Tensor:  # type: ignore[override]
        if not self.use_message:
            return super().forward(x)
        bt, _, d = x.shape
        m = self.message_fc(x[:, 0])  # eq. (3): (N*T, D)
        m = self.message_temporal(m.view(bt // num_frames, num_frames, d))  # eq. (4): (N, T, D)
        xm = torch.cat([x, m.reshape(bt, 1, d)], dim=1)  # (N*T, 1+P+1, D)
        x = x + self.attn(self.ln_1(xm))[:, :-1]  # eq. (9): message output dropped
        return x + self.mlp(self.ln_2(x))  # eq. (10)


class VideoViT(Backbone):
    """CLIP ViT over T frames with message tokens and a final temporal module.

    x: (N, C, T, H, W) -> forward_features: frame class tokens (N, E, T, 1, 1);
    forward_head(.., pre_logits=True): v (N, E), E = ``config.embed_dim`` = feature_dim.
    """

    has_tokens: ClassVar[bool] = True  # forward_tokens: what X-CLIP trains on

    def __init__(
        self,
        config: VisionConfig,
        *,
        num_frames: int = 8,
        temporal: str = "tws",
        final_temporal: str = "transformer",
        temporal_heads: int = 8,
        final_layers: int = 1,
        num_classes: int = 0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        for field, name in (("temporal", temporal), ("final_temporal", final_temporal)):
            if name not in TEMPORAL_MODULES:
                raise ValueError(
                    f"VideoViT: {field}={name!r} is not one of {sorted(TEMPORAL_MODULES)}"
                )
        if num_frames < 1:
            raise ValueError(f"VideoViT: num_frames must be >= 1, got {num_frames}")
        self.config = config
        self.num_frames = num_frames
        self.temporal, self.final_temporal = temporal, final_temporal
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.feature_dim = config.embed_dim
        self.width = config.width
        self.min_input_size = (1, config.patch_size, config.patch_size)
        w, p = config.width, config.patch_size
        scale = w**-0.5
        self.conv1 = nn.Conv2d(in_channels, w, kernel_size=p, stride=p, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(config.grid**2 + 1, w))
        self.ln_pre = LayerNorm(w)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(
            MessageBlock(w, config.heads, temporal, temporal_heads) for _ in range(config.layers)
        )
        init_clip_blocks_(self.transformer.resblocks, w)
        self.ln_post = LayerNorm(w)
        self.proj = nn.Parameter(scale * torch.randn(w, config.embed_dim))
        e = config.embed_dim
        if final_temporal != "none":
            self.temporal_embedding = nn.Parameter(torch.zeros(1, num_frames, e))
            nn.init.trunc_normal_(self.temporal_embedding, std=0.02)
            self.temporal_model = create_temporal(
                final_temporal, e, heads=temporal_heads, layers=final_layers
            )
        self.head = linear_head(e, num_classes)

    # ------------------------------------------------------------------ encoding
    def spatial_position(self, gh: int, gw: int) -> Tensor:
        """Position embedding for a (gh, gw) patch grid: (1 + gh*gw, D), bicubic if resized."""
        pos = self.positional_embedding
        g = self.config.grid
        if (gh, gw) == (g, g):
            return pos
        grid = pos[1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)  # (g*g, D) -> (1, D, g, g)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(gh * gw, -1)])

    def encode_frames(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> last-layer tokens (N*T, 1 + P, D), before ``ln_post``."""
        self.check_input(x)
        n, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(n * t, c, h, w)  # (N, C, T, H, W) -> (N*T, C, H, W)
        y = self.conv1(frames)  # (N*T, D, gh, gw)
        gh, gw = y.shape[-2:]
        y = y.flatten(2).transpose(1, 2)  # (N*T, D, gh, gw) -> (N*T, P, D)
        cls = self.class_embedding.to(y.dtype).expand(n * t, 1, -1)  # (N*T, 1, D)
        y = torch.cat([cls, y], dim=1) + self.spatial_position(gh, gw).to(y.dtype)  # eq. (2)
        y = self.ln_pre(y)
        for block in self.transformer.resblocks:
            y = block(y, num_frames=t)
        return y

    def project(self, tokens: Tensor) -> Tensor:
        """tokens: (..., D) -> (..., E): ``ln_post`` then ``proj``."""
        return torch.einsum("...d,de->...e", self.ln_post(tokens), self.proj)

    def temporal_pool(self, frames: Tensor) -> Tensor:
        """Eq. (12): v = mean_t h_delta(Z + E_temp). frames: (N, T, E) -> (N, E)."""
        if self.final_temporal == "none":
            return frames.mean(dim=1)
        pos = self.temporal_embedding
        t = frames.shape[1]
        if t != pos.shape[1]:  # (1, T0, E) -> (1, E, T0) -> (1, E, T) -> (1, T, E)
            pos = F.interpolate(pos.transpose(1, 2), size=t, mode="linear", align_corners=False)
            pos = pos.transpose(1, 2)
        return self.temporal_model(frames + pos.to(frames.dtype)).mean(dim=1)

    def forward_tokens(self, x: Tensor) -> VideoTokens:
        """x: (N, C, T, H, W) -> v (N, E), frame class tokens (N, T, E), patches (N, T, P, E)."""
        n, t = x.shape[0], x.shape[2]
        y = self.project(self.encode_frames(x))  # (N*T, 1+P, E)
        y = y.view(n, t, *y.shape[1:])  # (N*T, 1+P, E) -> (N, T, 1+P, E)
        frames = y[:, :, 0]
        return VideoTokens(video=self.temporal_pool(frames), frames=frames, patches=y[:, :, 1:])

    # ------------------------------------------------------------------ Backbone contract
    def forward_features(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> frame class tokens as a map (N, E, T, 1, 1).

        A ViT's unpooled output (timm's meaning, over time): ``forward_head(.., pre_logits=True)``
        (``pool_features``) turns it into v of eq. (12) exactly: the per-frame
        class tokens z_t (eq. 11). Grad-CAM over it gives per-frame (temporal) importance;
        spatial maps need the patch tokens of ``forward_tokens``.
        """
        n, t = x.shape[0], x.shape[2]
        cls = self.project(self.encode_frames(x)[:, 0])  # (N*T, E)
        return cls.view(n, t, -1).transpose(1, 2)[..., None, None]  # -> (N, E, T, 1, 1)

    def pool_features(self, fmap: Tensor) -> Tensor:
        """fmap: (N, E, T, 1, 1) from ``forward_features`` -> v (N, E), eq. (12)."""
        return self.temporal_pool(fmap.flatten(2).transpose(1, 2))  # (N, E, T) -> (N, T, E)

    def logits(self, feats: Tensor) -> Tensor:
        """feats: (N, E) -> (N, num_classes); identity when num_classes == 0."""
        return self.head(feats)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = linear_head(self.feature_dim, num_classes).to(self.proj.device)

    def to(self, *args: Any, **kwargs: Any) -> VideoViT:
        """``nn.Module.to``; ``memory_format=torch.channels_last_3d`` is ignored, as the ViT's
        only convolution is 2D (CLIP's ``conv1``) and PyTorch rejects that format for it."""
        device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        if memory_format == torch.channels_last_3d:
            return super().to(device=device, dtype=dtype, non_blocking=non_blocking)
        return super().to(*args, **kwargs)

    # ------------------------------------------------------------------ CLIP weights
    def load_clip_visual(self, checkpoint: ClipCheckpoint) -> None:
        """Copy ``visual.*`` of a CLIP checkpoint; the new modules keep their random init."""
        if checkpoint.vision != self.config:
            raise ValueError(
                f"CLIP checkpoint {checkpoint.path}: image tower {checkpoint.vision} does not "
                f"match the model's {self.config}"
            )
        result = self.load_state_dict(checkpoint.visual_state(), strict=False)
        missing = [k for k in result.missing_keys if not k.startswith("head.")]
        check_load_result(
            f"CLIP checkpoint {checkpoint.path}", missing, result.unexpected_keys, NEW_MODULE_KEYS
        )


def _scaled(config: VisionConfig, width: float, temporal_heads: int) -> VisionConfig:
    """``config`` with width and embedding dim scaled by ``width`` (multiples of the heads)."""
    if width <= 0:
        raise ValueError(f"vit_clip: width must be > 0, got {width}")
    if width == 1.0:
        return config
    h = config.heads
    return replace(
        config,
        width=max(h, round(config.width * width / h) * h),
        embed_dim=max(
            temporal_heads, round(config.embed_dim * width / temporal_heads) * temporal_heads
        ),
    )


def vit_clip(
    num_classes: int = 0,
    width: float = 1.0,
    *,
    arch: str = "ViT-B/32",
    checkpoint: str | Path | None = None,
    num_frames: int = 8,
    temporal: str = "tws",
    final_temporal: str = "transformer",
    temporal_heads: int = 8,
    final_layers: int = 1,
    image_size: int | None = None,
    in_channels: int = 3,
) -> VideoViT:
    """Video ViT of ``arch`` (a key of ``VISION_ARCHS``), or sized by a CLIP ``checkpoint``.

    With ``checkpoint`` the sizes come from the file (``arch`` is ignored) and the image tower
    is loaded from it; ``width`` must then be 1. ``image_size`` overrides the architecture's
    (random init only; a loaded model interpolates its position embedding at run time).
    """
    ckpt = None
    if checkpoint is not None:
        if width != 1.0 or image_size is not None:
            raise ValueError("vit_clip: width and image_size come from the CLIP checkpoint")
        ckpt = load_clip_checkpoint(checkpoint)
        config = ckpt.vision
    else:
        if arch not in VISION_ARCHS:
            raise ValueError(f"vit_clip: arch={arch!r} is not one of {sorted(VISION_ARCHS)}")
        config = _scaled(VISION_ARCHS[arch], width, temporal_heads)
        if image_size is not None:
            config = replace(config, image_size=image_size)
    model = VideoViT(
        config,
        num_frames=num_frames,
        temporal=temporal,
        final_temporal=final_temporal,
        temporal_heads=temporal_heads,
        final_layers=final_layers,
        num_classes=num_classes,
        in_channels=in_channels,
    )
    if ckpt is not None:
        model.load_clip_visual(ckpt)
    return model
