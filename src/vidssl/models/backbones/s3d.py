"""S3D (Xie et al., "Rethinking Spatiotemporal Feature Learning", ECCV 2018), torchvision layout.

Module names and shapes are identical to `torchvision.models.video.s3d` (`features.0..15`,
`classifier.1`), so a torchvision state dict loads with `strict=True` at ``width=1.0,
num_classes=400``. S3D is the encoder of CoCLR / CVTCL (seed 001).

Departures from torchvision (no effect on the key layout):
- torchvision pools with a fixed 2x7x7 average pool (stride 1) before the 1x1x1 classifier conv
  and then averages the logits; we average-pool the Mixed_5c map globally, which is identical
  at the 16x224x224 input it was built for and works at any input >= 5x17x17;
- BatchNorm momentum is PyTorch's 0.1 instead of torchvision's 0.001 (a port of the TF decay
  0.999 for its converted weights): with 0.001 the running statistics of a model trained for a
  short run stay near their initial values and eval-mode features are off. Pass
  ``bn_momentum=0.001`` to match torchvision exactly. eps stays 1e-3.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from vidssl.models.backbones.base import Backbone, TemporalConv3d, init_weights, scale_channels

NormLayer = Callable[[int], nn.Module]  # channels -> norm module

# Mixed blocks: (b0_out, b1_mid, b1_out, b2_mid, b2_out, b3_out) at width 1 (torchvision / S3D)
MIXED_3 = ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64))
MIXED_4 = (
    (192, 96, 208, 16, 48, 64),
    (160, 112, 224, 24, 64, 64),
    (128, 128, 256, 24, 64, 64),
    (112, 144, 288, 32, 64, 64),
    (256, 160, 320, 32, 128, 128),
)
MIXED_5 = ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128))


def norm_act(conv: nn.Conv3d, norm: NormLayer) -> nn.Sequential:
    """conv (no bias) -> BN -> ReLU, named `0`, `1`, `2` (torchvision `Conv3dNormActivation`)."""
    return nn.Sequential(conv, norm(conv.out_channels), nn.ReLU(inplace=True))


def pointwise(in_planes: int, out_planes: int, norm: NormLayer) -> nn.Sequential:
    """1x1x1 conv -> BN -> ReLU."""
    return norm_act(TemporalConv3d(in_planes, out_planes, 1), norm)


def sep_conv(in_planes: int, out_planes: int, k: int, s: int, norm: NormLayer) -> nn.Sequential:
    """Separable conv: 1xkxk spatial (stride 1,s,s) then kx1x1 temporal (stride s,1,1), each
    followed by BN + ReLU; padding k // 2."""
    p = k // 2
    spatial = nn.Conv3d(
        in_planes, out_planes, (1, k, k), stride=(1, s, s), padding=(0, p, p), bias=False
    )
    return nn.Sequential(
        norm_act(spatial, norm), norm_act(TemporalConv3d(out_planes, out_planes, k, s), norm)
    )


class SepInception(nn.Module):
    """Separable inception block: four branches concatenated along channels."""

    def __init__(self, in_planes: int, spec: tuple[int, ...], norm: NormLayer) -> None:
        super().__init__()
        b0, b1_mid, b1, b2_mid, b2, b3 = spec
        self.branch0 = pointwise(in_planes, b0, norm)
        self.branch1 = nn.Sequential(
            pointwise(in_planes, b1_mid, norm), sep_conv(b1_mid, b1, 3, 1, norm)
        )
        self.branch2 = nn.Sequential(
            pointwise(in_planes, b2_mid, norm), sep_conv(b2_mid, b2, 3, 1, norm)
        )
        self.branch3 = nn.Sequential(
            nn.MaxPool3d(3, stride=1, padding=1), pointwise(in_planes, b3, norm)
        )
        self.out_planes = b0 + b1 + b2 + b3

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C_in, T, H, W) -> (N, b0 + b1 + b2 + b3, T, H, W)."""
        branches = (self.branch0, self.branch1, self.branch2, self.branch3)
        return torch.cat([b(x) for b in branches], dim=1)


class S3D(Backbone):
    """x: (N, C, T, H, W) -> features (stem + Mixed_3b..5c) -> GAP -> classifier (1x1x1 conv)."""

    min_input_size = (5, 17, 17)

    def __init__(
        self,
        *,
        num_classes: int = 0,
        width: float = 1.0,
        in_channels: int = 3,
        dropout: float = 0.2,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.dropout = dropout
        norm = partial(nn.BatchNorm3d, eps=1e-3, momentum=bn_momentum)

        def mixed(in_planes: int, specs: tuple[tuple[int, ...], ...]) -> list[SepInception]:
            blocks: list[SepInception] = []
            for spec in specs:
                scaled = tuple(scale_channels(c, width) for c in spec)
                blocks.append(SepInception(in_planes, scaled, norm))
                in_planes = blocks[-1].out_planes
            return blocks

        c64, c192 = scale_channels(64, width), scale_channels(192, width)
        mixed_3 = mixed(c192, MIXED_3)
        mixed_4 = mixed(mixed_3[-1].out_planes, MIXED_4)
        mixed_5 = mixed(mixed_4[-1].out_planes, MIXED_5)
        self.features = nn.Sequential(
            sep_conv(in_channels, c64, 7, 2, norm),  # 0: Conv_1a, stride (2, 2, 2)
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),  # 1: MaxPool_2a
            pointwise(c64, c64, norm),  # 2: Conv_2b
            sep_conv(c64, c192, 3, 1, norm),  # 3: Conv_2c
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),  # 4: MaxPool_3a
            *mixed_3,  # 5, 6: Mixed_3b, 3c
            nn.MaxPool3d(3, stride=2, padding=1),  # 7: MaxPool_4a
            *mixed_4,  # 8-12: Mixed_4b..4f
            nn.MaxPool3d(2, stride=2),  # 13: MaxPool_5a
            *mixed_5,  # 14, 15: Mixed_5b, 5c
        )
        self.feature_dim = mixed_5[-1].out_planes
        init_weights(self)
        self.reset_classifier(num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> Mixed_5c map (N, 1024 x width, T/8, H/32, W/32)."""
        self.check_input(x)
        return self.features(x)

    def logits(self, feats: Tensor) -> Tensor:
        """feats: (N, feature_dim) -> (N, num_classes) through the 1x1x1 conv classifier."""
        if self.num_classes == 0:
            return feats
        logits = self.classifier(feats[:, :, None, None, None])  # (N, D) -> (N, D, 1, 1, 1)
        return logits.flatten(1)  # (N, K, 1, 1, 1) -> (N, K)

    def reset_classifier(self, num_classes: int) -> None:
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got num_classes={num_classes}")
        self.num_classes = num_classes
        if num_classes == 0:
            self.classifier: nn.Module = nn.Identity()
            return
        conv = nn.Conv3d(self.feature_dim, num_classes, 1, bias=True)
        nn.init.normal_(conv.weight, 0.0, 0.01)
        nn.init.zeros_(conv.bias)
        self.classifier = nn.Sequential(nn.Dropout(self.dropout), conv).train(self.training)


def s3d(
    *,
    num_classes: int = 0,
    width: float = 1.0,
    in_channels: int = 3,
    dropout: float = 0.2,
    bn_momentum: float = 0.1,
) -> S3D:
    """S3D with torchvision's key layout; feature_dim 1024 x width (Mixed_5c)."""
    return S3D(
        num_classes=num_classes,
        width=width,
        in_channels=in_channels,
        dropout=dropout,
        bn_momentum=bn_momentum,
    )
