"""Thin base class shared by every video backbone, plus channel scaling and weight init."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn


def scale_channels(channels: int, width: float, min_channels: int = 8) -> int:
    """`channels` scaled by the width multiplier, rounded to the nearest integer, >= `min_channels`.

    Exact at ``width == 1.0`` so that full-width models keep the published (torchvision) shapes.
    """
    if width <= 0:
        raise ValueError(f"backbone width must be > 0, got width={width}")
    if width == 1.0:
        return channels
    return max(min_channels, round(channels * width))


class TemporalConv3d(nn.Conv3d):
    """A `(kt, 1, 1)` Conv3d (stride `(st, 1, 1)`) computed as a Conv2d over `(T, H*W)`.

    Same parameters and state-dict keys as `nn.Conv3d`; numerically the same convolution. Why:
    for fp32 kernels whose last two dims are 1, PyTorch skips oneDNN when it runs on one thread
    with batch < 16 and falls back to a slow unfold + GEMM path; a (kt, 1) Conv2d stays on
    oneDNN. A 3x1x1 conv's forward + backward is then 1.8-4.7x faster; on more threads or in
    bf16 both run alike (`benchmarks/bench_backbones.py`). Works for contiguous and
    channels_last_3d inputs (H and W merge into one dim without a copy in both layouts).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kt: int = 1, stride: int = 1, bias: bool = False
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            (kt, 1, 1),
            stride=(stride, 1, 1),
            padding=(kt // 2, 0, 0),
            bias=bias,
        )

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> (N, out_channels, T', H, W)."""
        h, w = x.shape[-2:]
        weight = self.weight.squeeze(-1)  # (O, C, kt, 1, 1) -> (O, C, kt, 1)
        # (N, C, T, H, W) -> (N, C, T, H*W) -> conv -> (N, O, T', H*W)
        y = F.conv2d(x.flatten(3), weight, self.bias, self.stride[:2], self.padding[:2])
        return y.unflatten(3, (h, w))  # (N, O, T', H*W) -> (N, O, T', H, W)


def init_weights(model: nn.Module) -> None:
    """In-place init: Kaiming-normal (fan_out) convs, unit/zero norms, N(0, 0.01) linears."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def linear_head(in_features: int, num_classes: int) -> nn.Module:
    """`nn.Linear(in_features, num_classes)` (N(0, 0.01) init), or `nn.Identity()` when 0."""
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got num_classes={num_classes}")
    if num_classes == 0:
        return nn.Identity()
    fc = nn.Linear(in_features, num_classes)
    nn.init.normal_(fc.weight, 0.0, 0.01)
    nn.init.zeros_(fc.bias)
    return fc


# input modality -> its channels (RGB frames; optical flow dx, dy: vidssl.data.two_stream)
MODALITY_CHANNELS: dict[str, int] = {"rgb": 3, "flow": 2}


@dataclass
class VideoTokens:
    """Outputs of ``Backbone.forward_tokens`` (``vit_clip``; all in the joint embedding space E)."""

    video: Tensor  # (N, E): v of eq. (12)
    frames: Tensor  # (N, T, E): z_t of eq. (11), each frame's class token
    patches: Tensor  # (N, T, P, E): visual tokens h_t of eq. (18)


class Backbone(nn.Module):
    """Video backbone with timm's method meanings: clips `(N, C, T, H, W)` in.

    - `forward_features(x)`: the unpooled map of the last stage `(N, C', T', H', W')` (a conv
      net's last conv stage; a ViT's per-frame class tokens as `(N, E, T, 1, 1)`), the map
      Grad-CAM weighs;
    - `forward_head(fmap, pre_logits=False)`: pooling (`pool_features`) then the classifier
      (`logits`); `pre_logits=True` returns the pooled features `(N, feature_dim)`;
    - `forward(x) = forward_head(forward_features(x))`.

    Subclasses build their layers, set `feature_dim`, `num_classes`, `in_channels`, and implement
    `forward_features`, `logits` and `reset_classifier`. `pool_features` defaults to global
    average pooling. :func:`pooled_features` is the pooled features of clips.
    """

    feature_dim: int
    num_classes: int
    in_channels: int
    min_input_size: tuple[int, int, int] = (1, 1, 1)  # smallest (T, H, W) the layers accept
    # the clip length T the temporal parameters are sized for (a ViT's temporal embedding);
    # None: any T (convolutional backbones)
    num_frames: int | None = None
    # True for a backbone with token outputs (`forward_tokens`, language-video methods); such
    # a backbone also sets `num_frames`
    has_tokens: ClassVar[bool] = False

    def check_input(self, x: Tensor) -> None:
        """Raise a clear `ValueError` unless `x` is `(N, in_channels, T, H, W)` and large enough."""
        name = type(self).__name__
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{name} expects clips (N, {self.in_channels}, T, H, W), got {tuple(x.shape)}"
            )
        if any(s < m for s, m in zip(x.shape[2:], self.min_input_size)):
            raise ValueError(
                f"{name} needs (T, H, W) >= {self.min_input_size}, got {tuple(x.shape[2:])}"
            )

    @property
    def modalities(self) -> tuple[str, ...]:
        """The input the backbone consumes, in channel order: ``("rgb",)`` (3 channels) or
        ``("flow",)`` (2 channels). The evaluation data path builds its clips from this
        (``vidssl.eval.embed.eval_recipe``); ``vidssl.models.two_stream.TwoStreamBackbone``
        consumes ``("rgb", "flow")``."""
        for name, channels in MODALITY_CHANNELS.items():
            if channels == self.in_channels:
                return (name,)
        raise ValueError(
            f"{type(self).__name__}: no input modality has {self.in_channels} channels "
            f"({MODALITY_CHANNELS})"
        )

    def forward_features(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> unpooled last-stage map (N, C', T', H', W')."""
        raise NotImplementedError

    def pool_features(self, fmap: Tensor) -> Tensor:
        """fmap: (N, C', T', H', W') -> (N, feature_dim); global average pooling by default."""
        return fmap.mean(dim=(2, 3, 4))

    def logits(self, feats: Tensor) -> Tensor:
        """feats: (N, feature_dim) -> (N, num_classes); identity when num_classes == 0."""
        raise NotImplementedError

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """x: the map of `forward_features` -> logits (N, num_classes) (the pooled features
        when num_classes == 0), or the pooled features (N, feature_dim) with `pre_logits`."""
        feats = self.pool_features(x)
        return feats if pre_logits else self.logits(feats)

    def forward_tokens(self, x: Tensor) -> VideoTokens:
        """x: (N, C, T, H, W) -> the token outputs (video embedding, frame class tokens, patch
        tokens) that language-video methods (X-CLIP) train on; only backbones with
        `has_tokens` have them."""
        raise TypeError(
            f"{type(self).__name__} has no forward_tokens; use a video ViT backbone such as "
            "'vit_clip'"
        )

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a fresh one with `num_classes` outputs (0 -> identity)."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> (N, num_classes), or (N, feature_dim) when num_classes == 0."""
        return self.forward_head(self.forward_features(x))


def pooled_features(backbone: nn.Module, x: Tensor) -> Tensor:
    """x: (N, C, T, H, W) -> the backbone's pooled features (N, feature_dim):
    ``forward_head(forward_features(x), pre_logits=True)``."""
    return backbone.forward_head(backbone.forward_features(x), pre_logits=True)
