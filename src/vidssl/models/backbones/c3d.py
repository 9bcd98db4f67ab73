"""C3D (Tran et al., "Learning Spatiotemporal Features with 3D Convolutional Networks", ICCV 2015).

Eight 3x3x3 convolutions (conv1a, conv2a, conv3a/b, conv4a/b, conv5a/b; 64-128-256-256-512-512-
512-512 channels x width), max pools pool1 (1x2x2) and pool2..pool4 (2x2x2), then fc6 and fc7
(4096 x width, ReLU + dropout 0.5). `feature_dim` is the fc7 width (4096 x width).

Departures from the original, as in the C3D of the self-supervised video literature
(VCOP, PRP, RSPNet; compared in CSTP, seed 002):
- pool5 (2x2x2 max) + flatten (8192-d at 16x112x112) is replaced by global average pooling of
  conv5b, so fc6 takes 512 x width inputs and the network runs at any input >= 8x16x16;
- every conv is followed by BatchNorm3d (``batch_norm=True``, conv bias then off), which the
  original (trained with large supervised batches) lacked; ``batch_norm=False`` restores it;
- ``hidden_fc=False`` drops fc6/fc7 so the features are the globally pooled conv5b map
  (512 x width), the "global pooling feature" CSTP's projection head takes (seed 002,
  appendix "Pre-training details").
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from vidssl.models.backbones.base import Backbone, init_weights, linear_head, scale_channels

Pool = tuple[str, tuple[int, int, int]]  # (name, max-pool kernel = stride)

# (conv name, out channels at width 1, max pool after it) for the eight conv layers, in order
C3D_LAYERS: tuple[tuple[str, int, Pool | None], ...] = (
    ("conv1a", 64, ("pool1", (1, 2, 2))),
    ("conv2a", 128, ("pool2", (2, 2, 2))),
    ("conv3a", 256, None),
    ("conv3b", 256, ("pool3", (2, 2, 2))),
    ("conv4a", 512, None),
    ("conv4b", 512, ("pool4", (2, 2, 2))),
    ("conv5a", 512, None),
    ("conv5b", 512, None),  # pool5 -> global average pooling, see module docstring
)


def conv_bn_relu(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    """3x3x3 conv (padding 1) -> [BN] -> ReLU."""
    conv = nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=not batch_norm)
    norm = nn.BatchNorm3d(out_channels) if batch_norm else nn.Identity()
    return nn.Sequential(conv, norm, nn.ReLU(inplace=True))


class C3D(Backbone):
    """x: (N, C, T, H, W) -> conv1a..conv5b (+ pools) -> GAP -> fc6 -> fc7 -> fc8 classifier."""

    min_input_size = (8, 16, 16)

    def __init__(
        self,
        *,
        num_classes: int = 0,
        width: float = 1.0,
        in_channels: int = 3,
        dropout: float = 0.5,
        batch_norm: bool = True,
        hidden_fc: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = in_channels
        for name, out, pool in C3D_LAYERS:
            out = scale_channels(out, width)
            layers[name] = conv_bn_relu(channels, out, batch_norm)
            if pool is not None:
                layers[pool[0]] = nn.MaxPool3d(pool[1])
            channels = out
        self.features = nn.Sequential(layers)
        self.fc6: nn.Module = nn.Identity()
        self.fc7: nn.Module = nn.Identity()
        if hidden_fc:
            hidden = scale_channels(4096, width)
            self.fc6 = nn.Sequential(
                nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)
            )
            self.fc7 = nn.Sequential(
                nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)
            )
            channels = hidden
        self.feature_dim = channels
        self.num_classes = num_classes
        self.fc8 = linear_head(self.feature_dim, num_classes)
        init_weights(self)
        for m in (*self.fc6.modules(), *self.fc7.modules()):  # He init, not N(0, 0.01)
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward_features(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> conv5b map (N, 512 x width, T/8, H/16, W/16)."""
        self.check_input(x)
        return self.features(x)

    def pool_features(self, fmap: Tensor) -> Tensor:
        """fmap: (N, C5, T', H', W') -> GAP (N, C5) -> [fc6 -> fc7] -> (N, feature_dim)."""
        return self.fc7(self.fc6(fmap.mean(dim=(2, 3, 4))))

    def logits(self, feats: Tensor) -> Tensor:
        """feats: (N, feature_dim) -> (N, num_classes)."""
        return self.fc8(feats)

    def reset_classifier(self, num_classes: int) -> None:
        self.fc8 = linear_head(self.feature_dim, num_classes)
        self.num_classes = num_classes


def c3d(
    *,
    num_classes: int = 0,
    width: float = 1.0,
    in_channels: int = 3,
    dropout: float = 0.5,
    batch_norm: bool = True,
    hidden_fc: bool = True,
) -> C3D:
    """C3D with global pooling before fc6; feature_dim 4096 x width (fc7), or 512 x width
    (pooled conv5b) with ``hidden_fc=False``."""
    return C3D(
        num_classes=num_classes,
        width=width,
        in_channels=in_channels,
        dropout=dropout,
        batch_norm=batch_norm,
        hidden_fc=hidden_fc,
    )
