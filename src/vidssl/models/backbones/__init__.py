"""Video backbones, chosen by name from `BACKBONES`.

Every backbone takes clips `(N, C, T, H, W)` and has timm's methods: `forward_features` -> the
unpooled last stage `(N, C', T', H', W')`, `forward_head(fmap, pre_logits=False)` -> logits, or
the pooled features `(N, feature_dim)` with `pre_logits=True` (`base.pooled_features(model, x)`),
`reset_classifier(num_classes)` and a `width` multiplier that scales channels only (key names
never change). `r3d_18`, `r2plus1d_18` and `s3d` share torchvision's state-dict layout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vidssl.models.backbones.base import Backbone, scale_channels
from vidssl.models.backbones.c3d import C3D, c3d
from vidssl.models.backbones.resnet3d import VideoResNet, r2plus1d_18, r3d_18, r3d_50
from vidssl.models.backbones.s3d import S3D, s3d


def vit_clip(**kw: Any) -> Backbone:
    """CLIP-compatible video ViT (`.clip_video`), imported on first use (it is heavy)."""
    from vidssl.models.backbones.clip_video import vit_clip as build

    return build(**kw)


BACKBONES: dict[str, Callable[..., Backbone]] = {
    "c3d": c3d,
    "r2plus1d_18": r2plus1d_18,
    "r3d_18": r3d_18,
    "r3d_50": r3d_50,
    "s3d": s3d,
    "vit_clip": vit_clip,
}


def _attention_backbones() -> dict[str, Callable[..., Backbone]]:
    """MTCL's R(2+1)D-18 with spatial/temporal attention (`vidssl.models.backbones.attention`)."""
    from vidssl.models.backbones.attention import ATTENTION_BACKBONES

    return ATTENTION_BACKBONES


BACKBONES.update(_attention_backbones())


def list_backbones() -> list[str]:
    """Sorted names accepted by `create_backbone`."""
    return sorted(BACKBONES)


def create_backbone(name: str, num_classes: int = 0, width: float = 1.0, **kw: Any) -> Backbone:
    """Build backbone `name` with `num_classes` outputs (0: features only) at channel `width`.

    Extra keyword arguments go to the backbone's factory (e.g. `in_channels=2` for optical flow).
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid names: {', '.join(list_backbones())}")
    return BACKBONES[name](num_classes=num_classes, width=width, **kw)


__all__ = [
    "BACKBONES",
    "C3D",
    "S3D",
    "Backbone",
    "VideoResNet",
    "c3d",
    "create_backbone",
    "list_backbones",
    "r2plus1d_18",
    "r3d_18",
    "r3d_50",
    "s3d",
    "scale_channels",
]
