"""3D ResNets: R3D-18, R(2+1)D-18 (torchvision key layout) and a CVRL-style R3D-50.

R3D-18 and R(2+1)D-18 follow Tran et al., "A Closer Look at Spatiotemporal Convolutions for
Action Recognition" (CVPR 2018), with module names and shapes identical to
`torchvision.models.video.r3d_18` / `r2plus1d_18` (`stem`, `layer1..4`, `fc`), so a torchvision
state dict loads with `strict=True` at ``width=1.0, num_classes=400``.

Extension points (used by later methods, e.g. MTCL's attention R(2+1)D-18, seed 000 Sec. 2.2):
`conv_makers` chooses how each stage's 3x3 convolutions are built, and `block_extra(channels,
stage)` returns an optional module applied to every residual branch of stage ``layer{stage}``
(stage 1..4 = the paper's stages 2..5) before the shortcut is added. With no `block_extra`
the key layout is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from vidssl.models.backbones.base import (
    Backbone,
    TemporalConv3d,
    init_weights,
    linear_head,
    scale_channels,
)

BlockExtra = Callable[[int, int], nn.Module]  # (channels, stage 1..4) -> module on the residual


def r2plus1d_midplanes(in_planes: int, out_planes: int) -> int:
    """Mid channels of a (2+1)D conv matching a 3x3x3 conv's parameter count (Tran et al. 2018)."""
    return (in_planes * out_planes * 3 * 3 * 3) // (in_planes * 3 * 3 + 3 * out_planes)


def conv3x3x3(in_planes: int, out_planes: int, mid_planes: int, stride: int) -> nn.Module:
    """Full 3D conv, stride (s, s, s); `mid_planes` unused."""
    return nn.Conv3d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv2plus1d(in_planes: int, out_planes: int, mid_planes: int, stride: int) -> nn.Module:
    """(2+1)D conv: 1x3x3 spatial -> BN -> ReLU -> 3x1x1 temporal, overall stride (s, s, s)."""
    return nn.Sequential(
        nn.Conv3d(
            in_planes,
            mid_planes,
            (1, 3, 3),
            stride=(1, stride, stride),
            padding=(0, 1, 1),
            bias=False,
        ),
        nn.BatchNorm3d(mid_planes),
        nn.ReLU(inplace=True),
        TemporalConv3d(mid_planes, out_planes, 3, stride=stride),
    )


def conv1x3x3(in_planes: int, out_planes: int, mid_planes: int, stride: int) -> nn.Module:
    """Spatial-only conv, stride (1, s, s); `mid_planes` unused."""
    return nn.Conv3d(
        in_planes, out_planes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False
    )


@dataclass(frozen=True)
class ConvMaker:
    """How the convolutions of one ResNet stage are built.

    conv: (in, out, mid, stride) -> the block's 3x3 convolution.
    temporal_stride: whether `conv` also strides in time (the shortcut must then match).
    reduce_kt: bottleneck only, temporal kernel of the first ("1x1x1") reduce convolution.
    """

    conv: Callable[[int, int, int, int], nn.Module]
    temporal_stride: bool = True
    reduce_kt: int = 1

    def shortcut_stride(self, stride: int) -> tuple[int, int, int]:
        return (stride if self.temporal_stride else 1, stride, stride)


CONV3D = ConvMaker(conv3x3x3)
CONV2PLUS1D = ConvMaker(conv2plus1d)
CONV2D = ConvMaker(conv1x3x3, temporal_stride=False)
CONV2D_T3 = ConvMaker(conv1x3x3, temporal_stride=False, reduce_kt=3)


class BasicBlock(nn.Module):
    """Two 3x3 convs (`conv1`, `conv2`), optional `extra` on the branch, identity/1x1 shortcut."""

    expansion = 1

    def __init__(
        self,
        in_planes: int,
        planes: int,
        maker: ConvMaker,
        stride: int = 1,
        downsample: nn.Module | None = None,
        extra: nn.Module | None = None,
    ) -> None:
        super().__init__()
        # torchvision uses the block's (in, out) mid-planes for BOTH convs of the block
        mid = r2plus1d_midplanes(in_planes, planes)
        self.conv1 = nn.Sequential(
            maker.conv(in_planes, planes, mid, stride),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(maker.conv(planes, planes, mid, 1), nn.BatchNorm3d(planes))
        self.extra = nn.Identity() if extra is None else extra  # Identity adds no state-dict keys
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C_in, T, H, W) -> (N, planes, T/s, H/s, W/s)."""
        out = self.conv2(self.conv1(x))
        out = self.extra(out)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """kt x1x1 reduce (`conv1`) -> 3x3 (`conv2`) -> 1x1x1 expand x4 (`conv3`), optional `extra`."""

    expansion = 4

    def __init__(
        self,
        in_planes: int,
        planes: int,
        maker: ConvMaker,
        stride: int = 1,
        downsample: nn.Module | None = None,
        extra: nn.Module | None = None,
    ) -> None:
        super().__init__()
        kt = maker.reduce_kt
        out_planes = planes * self.expansion
        self.conv1 = nn.Sequential(
            TemporalConv3d(in_planes, planes, kt),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )
        mid = r2plus1d_midplanes(planes, planes)
        self.conv2 = nn.Sequential(
            maker.conv(planes, planes, mid, stride), nn.BatchNorm3d(planes), nn.ReLU(inplace=True)
        )
        self.conv3 = nn.Sequential(
            TemporalConv3d(planes, out_planes, 1), nn.BatchNorm3d(out_planes)
        )
        self.extra = nn.Identity() if extra is None else extra  # Identity adds no state-dict keys
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C_in, T, H, W) -> (N, 4 * planes, T', H/s, W/s)."""
        out = self.conv3(self.conv2(self.conv1(x)))
        out = self.extra(out)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def r3d_stem(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x7x7 conv, stride (1, 2, 2) -> BN -> ReLU (torchvision `BasicStem`)."""
    return nn.Sequential(
        nn.Conv3d(
            in_channels, out_channels, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False
        ),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


def r2plus1d_stem(in_channels: int, mid_channels: int, out_channels: int) -> nn.Sequential:
    """1x7x7 spatial (stride 1,2,2) -> BN -> ReLU -> 3x1x1 temporal -> BN -> ReLU."""
    return nn.Sequential(
        nn.Conv3d(
            in_channels, mid_channels, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False
        ),
        nn.BatchNorm3d(mid_channels),
        nn.ReLU(inplace=True),
        TemporalConv3d(mid_channels, out_channels, 3),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


def cvrl_stem(in_channels: int, out_channels: int) -> nn.Sequential:
    """5x7x7 conv, stride (1, 2, 2) -> BN -> ReLU -> 1x3x3 max pool, stride (1, 2, 2)."""
    return nn.Sequential(
        nn.Conv3d(
            in_channels, out_channels, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False
        ),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
    )


# --- stem option ----------------------------------------------------------------------------
# Departure (ours, off by default): ``stem="small"`` replaces a stem's 7x7 spatial kernel with
# stride 2 (and CVRL's max pool) by a 3x3 kernel with no spatial stride, keeping its temporal
# kernel and channels, for small inputs such as 32 px crops, where the published stems keep
# only an 16x16 (R3D/R(2+1)D) or 8x8 (R3D-50) map for layer1 (as CIFAR ResNets replace the
# ImageNet stem, He et al. 2016 sec. 4.2). Tran et al. 2018 (sec. 3-4) and CVRL (R3D-50
# table) have only the strided stems. Module names are unchanged, but the stem's weight shapes
# differ, so torchvision / published weights do not load into a small stem.
StemName = Literal["default", "small"]


def r3d_small_stem(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3x3 conv, stride 1 -> BN -> ReLU: R3D-18's stem without spatial downsampling."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


def r2plus1d_small_stem(in_channels: int, mid_channels: int, out_channels: int) -> nn.Sequential:
    """1x3x3 spatial (stride 1) -> BN -> ReLU -> 3x1x1 temporal -> BN -> ReLU."""
    return nn.Sequential(
        nn.Conv3d(in_channels, mid_channels, (1, 3, 3), padding=(0, 1, 1), bias=False),
        nn.BatchNorm3d(mid_channels),
        nn.ReLU(inplace=True),
        TemporalConv3d(mid_channels, out_channels, 3),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


def cvrl_small_stem(in_channels: int, out_channels: int) -> nn.Sequential:
    """5x3x3 conv, stride 1 -> BN -> ReLU (no max pool): CVRL's stem without downsampling."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, (5, 3, 3), padding=(2, 1, 1), bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


# stem option -> builder, per family: (in, out) for R3D-18 / R3D-50, (in, mid, out) for R(2+1)D
R3D_STEMS: dict[str, Callable[[int, int], nn.Sequential]] = {
    "default": r3d_stem,
    "small": r3d_small_stem,
}
R2PLUS1D_STEMS: dict[str, Callable[[int, int, int], nn.Sequential]] = {
    "default": r2plus1d_stem,
    "small": r2plus1d_small_stem,
}
CVRL_STEMS: dict[str, Callable[[int, int], nn.Sequential]] = {
    "default": cvrl_stem,
    "small": cvrl_small_stem,
}


def pick_stem(
    stems: dict[str, Callable[..., nn.Sequential]], stem: str
) -> Callable[..., nn.Sequential]:
    """The builder of option ``stem`` (``model.args.stem``); a clear error for unknown names."""
    if stem not in stems:
        raise ValueError(f"stem={stem!r}: expected one of {sorted(stems)} (model.args.stem)")
    return stems[stem]


class VideoResNet(Backbone):
    """Stem + four residual stages (`layer1..4`, 64/128/256/512 x width planes) + `fc`.

    x: (N, C, T, H, W) -> stem -> layer1 (stride 1) -> layer2..4 (stride 2 each) -> GAP -> fc.
    """

    def __init__(
        self,
        *,
        block: type[BasicBlock] | type[Bottleneck],
        conv_makers: Sequence[ConvMaker],
        layers: Sequence[int],
        stem: nn.Module,
        stem_channels: int,
        width: float,
        num_classes: int,
        in_channels: int,
        block_extra: BlockExtra | None = None,
    ) -> None:
        super().__init__()
        if len(conv_makers) != 4 or len(layers) != 4:
            raise ValueError(
                f"conv_makers and layers need 4 entries, got {len(conv_makers)} and {len(layers)}"
            )
        self.in_channels = in_channels
        self.stem = stem
        in_planes = stem_channels
        stages: list[nn.Sequential] = []
        for i, (maker, depth, planes) in enumerate(zip(conv_makers, layers, (64, 128, 256, 512))):
            planes = scale_channels(planes, width)
            stride = 1 if i == 0 else 2
            stage = self._make_stage(
                block, maker, in_planes, planes, depth, stride, block_extra, i + 1
            )
            stages.append(stage)
            in_planes = planes * block.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.feature_dim = in_planes
        self.num_classes = num_classes
        self.fc = linear_head(self.feature_dim, num_classes)
        init_weights(self)

    @staticmethod
    def _make_stage(
        block: type[BasicBlock] | type[Bottleneck],
        maker: ConvMaker,
        in_planes: int,
        planes: int,
        depth: int,
        stride: int,
        block_extra: BlockExtra | None,
        stage: int,
    ) -> nn.Sequential:
        out_planes = planes * block.expansion
        downsample = None
        if stride != 1 or in_planes != out_planes:
            downsample = nn.Sequential(
                nn.Conv3d(
                    in_planes, out_planes, 1, stride=maker.shortcut_stride(stride), bias=False
                ),
                nn.BatchNorm3d(out_planes),
            )
        blocks: list[nn.Module] = []
        for j in range(depth):
            extra = None if block_extra is None else block_extra(out_planes, stage)
            if j == 0:
                blocks.append(block(in_planes, planes, maker, stride, downsample, extra))
            else:
                blocks.append(block(out_planes, planes, maker, 1, None, extra))
        return nn.Sequential(*blocks)

    def forward_features(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> layer4 map (N, feature_dim, T', H/16 or /32, W')."""
        self.check_input(x)
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def logits(self, feats: Tensor) -> Tensor:
        """feats: (N, feature_dim) -> (N, num_classes)."""
        return self.fc(feats)

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = linear_head(self.feature_dim, num_classes)
        self.num_classes = num_classes


def r3d_18(
    *,
    num_classes: int = 0,
    width: float = 1.0,
    in_channels: int = 3,
    block_extra: BlockExtra | None = None,
    stem: StemName = "default",
) -> VideoResNet:
    """R3D-18: 3x3x3 convs throughout, [2, 2, 2, 2] basic blocks; feature_dim 512 x width.

    ``stem="small"``: a 3x3x3 stride-1 stem for small inputs (a departure, see ``StemName``).
    """
    stem_channels = scale_channels(64, width)
    return VideoResNet(
        block=BasicBlock,
        conv_makers=[CONV3D] * 4,
        layers=[2, 2, 2, 2],
        stem=pick_stem(R3D_STEMS, stem)(in_channels, stem_channels),
        stem_channels=stem_channels,
        width=width,
        num_classes=num_classes,
        in_channels=in_channels,
        block_extra=block_extra,
    )


def r2plus1d_18(
    *,
    num_classes: int = 0,
    width: float = 1.0,
    in_channels: int = 3,
    block_extra: BlockExtra | None = None,
    stem: StemName = "default",
) -> VideoResNet:
    """R(2+1)D-18: (2+1)D convs, [2, 2, 2, 2] basic blocks; feature_dim 512 x width.

    The stem's 45 mid channels are torchvision's constant (scaled by width like the rest).
    ``stem="small"``: its 1x7x7 stride-2 part becomes 1x3x3 stride 1 (see ``StemName``).
    """
    stem_channels = scale_channels(64, width)
    return VideoResNet(
        block=BasicBlock,
        conv_makers=[CONV2PLUS1D] * 4,
        layers=[2, 2, 2, 2],
        stem=pick_stem(R2PLUS1D_STEMS, stem)(in_channels, scale_channels(45, width), stem_channels),
        stem_channels=stem_channels,
        width=width,
        num_classes=num_classes,
        in_channels=in_channels,
        block_extra=block_extra,
    )


def r3d_50(
    *,
    num_classes: int = 0,
    width: float = 1.0,
    in_channels: int = 3,
    block_extra: BlockExtra | None = None,
    stem: StemName = "default",
) -> VideoResNet:
    """R3D-50 as used by CVRL (seed 003; Qian et al. CVPR 2021, R3D-50 architecture table).

    CVRL's R3D-50 is the SlowOnly-style inflated ResNet-50, which we follow rather than a
    3x3x3-everywhere ResNet-50: conv1 5x7x7 (stride 1, 2, 2) + 1x3x3 max pool; bottlenecks
    [3, 4, 6, 3]; res2/res3 reduce convs 1x1x1, res4/res5 reduce convs 3x1x1; every 3x3 conv is
    1x3x3; no temporal downsampling anywhere (T' = T). Module names follow torchvision's
    `VideoResNet` bottleneck layout (`stem`, `layer1..4.k.conv1/conv2/conv3/downsample`, `fc`).
    feature_dim 2048 x width. ``stem="small"``: a 5x3x3 stride-1 stem, no max pool (see
    ``StemName``).
    """
    stem_channels = scale_channels(64, width)
    return VideoResNet(
        block=Bottleneck,
        conv_makers=[CONV2D, CONV2D, CONV2D_T3, CONV2D_T3],
        layers=[3, 4, 6, 3],
        stem=pick_stem(CVRL_STEMS, stem)(in_channels, stem_channels),
        stem_channels=stem_channels,
        width=width,
        num_classes=num_classes,
        in_channels=in_channels,
        block_extra=block_extra,
    )
